/*
 * diag.h - internal: positioned diagnostics for a text file, printed like a
 * compiler's:
 *
 *     configs/local.yaml:12:5: unknown key 'heartbeat_msec' in fault_tolerance
 *       heartbeat_msec: 100
 *       ^
 *
 * A list collects every problem found in one pass; printing sorts them by
 * position. Knows nothing of YAML or of the spec's keys.
 */
#ifndef RINGLEADER_DIAG_H
#define RINGLEADER_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* A position in the text, counted from 0 like libyaml's marks; printed + 1. */
typedef struct rli_pos {
    size_t line;
    size_t col; /* in characters (UTF-8 sequences), not bytes */
} rli_pos;

typedef struct rli_diag {
    rli_pos pos;
    int has_pos; /* 0: about the whole file ("PATH: message") */
    size_t seq;  /* discovery order: ties keep it */
    char *msg;
} rli_diag;

/*
 * The problems found in one text. name and text are borrowed and must
 * outlive the list; the messages are owned by it. At most RLI_DIAG_MAX are
 * kept (the rest are counted), so garbage input cannot flood the output.
 */
typedef struct rli_diags {
    const char *name;
    const char *text;
    size_t len;
    rli_diag *v;
    size_t n, cap;
    size_t dropped;
} rli_diags;

#define RLI_DIAG_MAX 100

void rli_diags_init(rli_diags *d, const char *name, const char *text, size_t len);
void rli_diags_fini(rli_diags *d);

/* Adds a problem at pos (printf-style message, no trailing newline). */
void rli_diag_at(rli_diags *d, rli_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a problem about the whole file. */
void rli_diag_file(rli_diags *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Number of problems found, including those not kept. */
size_t rli_diags_count(const rli_diags *d);

/*
 * Sorts the problems by position and writes each to out as
 * "NAME:LINE:COL: message", the source line (cut to a window around COL if
 * long, control characters shown as '?') and a caret under COL.
 */
void rli_diags_print(rli_diags *d, FILE *out);

/* Formats the first problem (after sorting) as one line into buf. */
void rli_diags_first(rli_diags *d, char *buf, size_t size);

/* The first byte of the character at pos, or -1 if there is none. */
int rli_diag_char_at(const rli_diags *d, rli_pos pos);

/* The position of byte offset off in the text (for libyaml reader errors). */
rli_pos rli_diag_pos_of_offset(const rli_diags *d, size_t off);

/*
 * Copies len bytes of user text into buf (size > 4) for a message: control
 * characters become '?', and text longer than the buffer ends in "...".
 */
const char *rli_diag_quote(const char *s, size_t len, char *buf, size_t size);

#endif
