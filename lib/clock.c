/* clock.c - the library's monotonic clock (every rl_clock_* and rli_now_*
 * reads it here) and deadline conversions for condition variables. */
#include <errno.h>

#include "ringleader/clock.h"
#include "rli.h"

uint64_t rl_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t rl_clock_us(void)
{
    return rl_clock_ns() / 1000u;
}

uint64_t rl_clock_ms(void)
{
    return rl_clock_ns() / 1000000u;
}

double rl_clock_s(void)
{
    return (double)rl_clock_ns() * 1e-9;
}

uint64_t rli_now_us(void)
{
    return rl_clock_us();
}

uint64_t rli_now_ms(void)
{
    return rl_clock_ms();
}

struct timespec rl_timespec_in(clockid_t clock, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void rl_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

int rl_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mtx, uint64_t deadline_ms)
{
    uint64_t now = rli_now_ms();
    if (now >= deadline_ms) return RL_ETIMEDOUT;
    struct timespec ts = rl_timespec_in(CLOCK_MONOTONIC, deadline_ms - now);
    int rv = pthread_cond_timedwait(cv, mtx, &ts);
    return rv == ETIMEDOUT && rli_now_ms() >= deadline_ms ? RL_ETIMEDOUT : RL_OK;
}
