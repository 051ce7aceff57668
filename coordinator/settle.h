/*
 * settle.h - program mode (docs/worker-api.md): after a failure or a new
 * plan, the step every member of the replaced epoch resumes at. A pure
 * function, unit-tested by tests/test_settle.c.
 */
#ifndef RL_SETTLE_H
#define RL_SETTLE_H

#include <stdbool.h>
#include <stdint.h>

/* What one member of the replaced epoch said in its PLAN call. */
typedef struct settle_report {
    uint64_t done;  /* collectives it completed (returned RL_OK) */
    bool data_done; /* it holds the data of collective `done` but missed its barrier */
} settle_report;

/*
 * The step every member resumes at: the least of done + data_done over the
 * n reports (fallback when n is 0). A member completes a collective only
 * after its barrier, which every member entered holding the data: so no
 * member is two collectives behind another, one a collective behind holds
 * its data, and a member whose data is missing proves that none completed
 * it. *consistent is false when a report breaks that (done above the
 * result: a member completed a collective that another lacks the data of).
 */
uint64_t settle_resume_step(const settle_report *r, int n, uint64_t fallback, bool *consistent);

#endif
