/*
 * clock.h - the one clock of Ringleader's API, and deadlines for condition
 * variables.
 *
 * Every deadline a function takes is an absolute value of rl_clock_ms
 * (CLOCK_MONOTONIC). rl_clock_ns/us/s read the same clock at finer precision,
 * for measurements. CPU time and wall-clock dates are other clocks: use
 * clock_gettime with CLOCK_PROCESS_CPUTIME_ID or CLOCK_REALTIME for those.
 */
#ifndef RINGLEADER_CLOCK_H
#define RINGLEADER_CLOCK_H

#include "export.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic milliseconds, nanoseconds, microseconds and seconds (a double),
 * all on one clock. Thread-safe, never fail. */
RL_API uint64_t rl_clock_ms(void);
RL_API uint64_t rl_clock_ns(void);
RL_API uint64_t rl_clock_us(void);
RL_API double rl_clock_s(void);

/* The time ms milliseconds from now on clock `clock`, as the absolute
 * timespec pthread_cond_timedwait takes (CLOCK_REALTIME for a condition
 * variable with default attributes). */
RL_API struct timespec rl_timespec_in(clockid_t clock, uint64_t ms);

/* Initialises *cv with CLOCK_MONOTONIC, the clock rl_cond_wait_until waits on.
 * Release with pthread_cond_destroy. */
RL_API void rl_cond_init_monotonic(pthread_cond_t *cv);

/*
 * Waits on cv (initialised by rl_cond_init_monotonic; mtx held by the caller,
 * as pthread_cond_timedwait) until it is signalled or deadline_ms (absolute,
 * rl_clock_ms) passes. Returns RL_ETIMEDOUT when the deadline has passed
 * (without waiting if it had already), RL_OK otherwise: a wake-up may be
 * spurious, so the caller re-checks its condition.
 */
RL_API int rl_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mtx, uint64_t deadline_ms);

#ifdef __cplusplus
}
#endif
#endif
