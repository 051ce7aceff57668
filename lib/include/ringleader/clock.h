/*
 * clock.h - the one clock of Ringleader's API: every deadline a function
 * takes is an absolute value of rl_clock_ms.
 */
#ifndef RINGLEADER_CLOCK_H
#define RINGLEADER_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic milliseconds (CLOCK_MONOTONIC); thread-safe, never fails. */
uint64_t rl_clock_ms(void);

#ifdef __cplusplus
}
#endif
#endif
