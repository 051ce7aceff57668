/*
 * clock.c - rl_clock_ms, the public face of the library's monotonic clock
 * (rli_now_ms).
 */
#include "ringleader/clock.h"
#include "rli.h"

uint64_t rl_clock_ms(void)
{
    return rli_now_ms();
}
