/* settle.c - the step a replaced epoch's members resume at (settle.h). */
#include "settle.h"

uint64_t settle_resume_step(const settle_report *r, int n, uint64_t fallback, bool *consistent)
{
    uint64_t d = UINT64_MAX, hi = 0;
    for (int k = 0; k < n; k++) {
        uint64_t v = r[k].done + (r[k].data_done ? 1 : 0);
        if (v < d) d = v;
        if (r[k].done > hi) hi = r[k].done;
    }
    if (n == 0) d = fallback;
    *consistent = n == 0 || hi <= d;
    return d;
}
