/* diag.c - positioned diagnostics: collect, sort, print with the source line
 * and a caret. Lines and columns are counted the way libyaml counts them
 * (line breaks \n, \r\n, \r, U+0085, U+2028, U+2029; columns in characters;
 * a leading UTF-8 byte-order mark does not count) so that its marks and ours
 * point at the same character. */
#include <stdarg.h>
#include <string.h>

#include "diag.h"
#include "rli.h"

/* How much of a long source line to show on either side of the column. */
#define DIAG_WINDOW_BEFORE 60
#define DIAG_WINDOW_AFTER  60

void rli_diags_init(rli_diags *d, const char *name, const char *text, size_t len)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    d->text = text;
    d->len = len;
}

void rli_diags_fini(rli_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
    memset(d, 0, sizeof(*d));
}

static void diag_add(rli_diags *d, int has_pos, rli_pos pos, const char *fmt, va_list ap)
{
    char buf[512];
    if (d->n >= RLI_DIAG_MAX) {
        d->dropped++;
        return;
    }
    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 8;
        d->v = rli_realloc(d->v, d->cap * sizeof(d->v[0]));
    }
    d->v[d->n] = (rli_diag){.pos = pos, .has_pos = has_pos, .seq = d->n, .msg = rli_strdup(buf)};
    d->n++;
}

void rli_diag_at(rli_diags *d, rli_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, 1, pos, fmt, ap);
    va_end(ap);
}

void rli_diag_file(rli_diags *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, 0, (rli_pos){0, 0}, fmt, ap);
    va_end(ap);
}

size_t rli_diags_count(const rli_diags *d)
{
    return d->n + d->dropped;
}

static int diag_cmp(const void *a, const void *b)
{
    const rli_diag *x = a, *y = b;
    if (x->has_pos != y->has_pos) return x->has_pos - y->has_pos; /* file-level first */
    if (x->pos.line != y->pos.line) return x->pos.line < y->pos.line ? -1 : 1;
    if (x->pos.col != y->pos.col) return x->pos.col < y->pos.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- Walking the text the way libyaml does ------------------------------ */

/* Bytes of the line break at p, or 0 if there is none. */
static size_t diag_break_len(const char *p, const char *end)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t left = (size_t)(end - p);
    if (left == 0) return 0;
    if (u[0] == '\n') return 1;
    if (u[0] == '\r') return left >= 2 && u[1] == '\n' ? 2 : 1;
    if (left >= 2 && u[0] == 0xC2 && u[1] == 0x85) return 2;
    if (left >= 3 && u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9)) return 3;
    return 0;
}

static int diag_is_char_start(char c)
{
    return ((unsigned char)c & 0xC0) != 0x80;
}

static const char *diag_next_char(const char *p, const char *end)
{
    if (p < end) p++;
    while (p < end && !diag_is_char_start(*p))
        p++;
    return p;
}

static const char *diag_prev_char(const char *p, const char *start)
{
    if (p > start) p--;
    while (p > start && !diag_is_char_start(*p))
        p--;
    return p;
}

static const char *diag_text_start(const rli_diags *d)
{
    if (d->len >= 3 && memcmp(d->text, "\xEF\xBB\xBF", 3) == 0) return d->text + 3;
    return d->text;
}

rli_pos rli_diag_pos_of_offset(const rli_diags *d, size_t off)
{
    rli_pos pos = {0, 0};
    const char *end = d->text + (off < d->len ? off : d->len);
    const char *p = diag_text_start(d);
    while (p < end) {
        size_t br = diag_break_len(p, d->text + d->len);
        if (br > 0) {
            pos.line++;
            pos.col = 0;
            p += br;
        } else {
            pos.col++;
            p = diag_next_char(p, end);
        }
    }
    return pos;
}

/* Finds the line of pos ([*ls, *le) without its break) and the byte of its
 * column (*at, at most *le). Returns -1 if the text has no such line. */
static int diag_find(const rli_diags *d, rli_pos pos, const char **ls, const char **le,
                     const char **at)
{
    const char *end = d->text + d->len;
    const char *p = diag_text_start(d);
    for (size_t l = 0; l < pos.line; l++) {
        while (p < end && diag_break_len(p, end) == 0)
            p++;
        if (p >= end) return -1;
        p += diag_break_len(p, end);
    }
    *ls = *le = p;
    while (*le < end && diag_break_len(*le, end) == 0)
        (*le)++;
    *at = *ls;
    for (size_t c = 0; c < pos.col && *at < *le; c++)
        *at = diag_next_char(*at, *le);
    return 0;
}

int rli_diag_char_at(const rli_diags *d, rli_pos pos)
{
    const char *ls, *le, *at;
    if (diag_find(d, pos, &ls, &le, &at) != 0 || at == le) return -1;
    return (unsigned char)*at;
}

/* Writes the source line of pos and a caret under its column, if the line
 * exists and is not empty. */
static void diag_print_source(const rli_diags *d, rli_pos pos, FILE *out)
{
    const char *ls, *le, *caret;
    if (diag_find(d, pos, &ls, &le, &caret) != 0 || le == ls) return;
    const char *ws = caret, *we = caret;
    for (int i = 0; i < DIAG_WINDOW_BEFORE && ws > ls; i++)
        ws = diag_prev_char(ws, ls);
    for (int i = 0; i < DIAG_WINDOW_AFTER && we < le; i++)
        we = diag_next_char(we, le);

    fputs("  ", out);
    if (ws > ls) fputs("...", out);
    for (const char *q = ws; q < we; q++) {
        unsigned char ch = (unsigned char)*q;
        fputc((ch < 0x20 && ch != '\t') || ch == 0x7F ? '?' : ch, out);
    }
    if (we < le) fputs("...", out);
    fputs("\n  ", out);
    if (ws > ls) fputs("   ", out);
    for (const char *q = ws; q < caret; q = diag_next_char(q, caret))
        fputc(*q == '\t' ? '\t' : ' ', out);
    fputs("^\n", out);
}

void rli_diags_print(rli_diags *d, FILE *out)
{
    if (d->n > 1) qsort(d->v, d->n, sizeof(d->v[0]), diag_cmp);
    for (size_t i = 0; i < d->n; i++) {
        const rli_diag *g = &d->v[i];
        if (!g->has_pos) {
            fprintf(out, "%s: %s\n", d->name, g->msg);
            continue;
        }
        fprintf(out, "%s:%zu:%zu: %s\n", d->name, g->pos.line + 1, g->pos.col + 1, g->msg);
        diag_print_source(d, g->pos, out);
    }
    if (d->dropped > 0)
        fprintf(out, "%s: %zu more problems not shown (fix the ones above first)\n", d->name,
                d->dropped);
}

void rli_diags_first(rli_diags *d, char *buf, size_t size)
{
    if (size == 0) return;
    buf[0] = '\0';
    if (d->n == 0) return;
    if (d->n > 1) qsort(d->v, d->n, sizeof(d->v[0]), diag_cmp);
    const rli_diag *g = &d->v[0];
    size_t more = rli_diags_count(d) - 1;
    char tail[64] = "";
    if (more > 0) snprintf(tail, sizeof(tail), " (and %zu more problems)", more);
    if (g->has_pos)
        snprintf(buf, size, "%s:%zu:%zu: %s%s", d->name, g->pos.line + 1, g->pos.col + 1, g->msg,
                 tail);
    else
        snprintf(buf, size, "%s: %s%s", d->name, g->msg, tail);
}

const char *rli_diag_quote(const char *s, size_t len, char *buf, size_t size)
{
    RL_ASSERT(size > 4);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= size) {
            memcpy(buf + size - 4, "...", 4);
            return buf;
        }
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = (char)((ch < 0x20 || ch == 0x7F) ? '?' : ch);
    }
    buf[o] = '\0';
    return buf;
}
