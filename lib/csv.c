/*
 * csv.c - reads a CSV file into an rl_table (all rows in memory as float).
 *
 * The file is read in large chunks and cut into lines with memchr; a line is
 * split in place (quotes removed, fields NUL-terminated) and each field
 * parsed with strtof. Nothing about a line's length is trusted: a line over
 * RL_CSV_MAX_LINE bytes is an error, not an allocation.
 */
#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ringleader/data.h"
#include "rli.h"

#define CSV_CHUNK (1u << 16)

/* Buffered line reader over a FILE. */
typedef struct csv_reader {
    FILE *f;
    char *buf;
    size_t cap;        /* bytes allocated (one more is kept for a NUL) */
    size_t start, end; /* unread bytes are buf[start, end) */
    int eof;
    int64_t line_no; /* of the line last returned, from 1 */
} csv_reader;

/* The next line, NUL-terminated, without its "\n" or "\r\n", in *line
 * (valid until the next call) of *len bytes; *had_nl says whether it ended
 * with a newline. At the end of the file *line is NULL. Returns RL_OK, or an
 * error with the detail set. */
static int csv_next_line(csv_reader *r, const char *path, char **line, size_t *len, int *had_nl)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL || (r->eof && r->end > r->start)) {
            char *s = r->buf + r->start;
            size_t n = nl != NULL ? (size_t)(nl - s) : r->end - r->start;
            *had_nl = nl != NULL;
            r->start += n + (nl != NULL);
            if (n > RL_CSV_MAX_LINE) goto too_long;
            if (n > 0 && s[n - 1] == '\r') n--;
            s[n] = '\0'; /* the '\n', '\r', or the spare byte after end */
            r->line_no++;
            *line = s;
            *len = n;
            return RL_OK;
        }
        if (r->eof) {
            *line = NULL;
            return RL_OK;
        }
        /* Need more: move the partial line to the front, grow if full, read. */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end > RL_CSV_MAX_LINE) goto too_long;
        if (r->cap - r->end < CSV_CHUNK) {
            size_t cap = r->cap * 2;
            char *b = realloc(r->buf, cap + 1);
            if (b == NULL) return rli_err(RL_ENOMEM, "%s: line buffer of %zu bytes", path, cap);
            r->buf = b;
            r->cap = cap;
        }
        size_t got = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f))
                return rli_err(RL_EIO, "%s: read error after line %lld", path,
                               (long long)r->line_no);
            r->eof = 1;
        }
    }
too_long:
    return rli_err(RL_EDATA, "%s:%lld: line longer than %u bytes", path, (long long)r->line_no + 1,
                   RL_CSV_MAX_LINE);
}

/*
 * Cuts the next field off *p (a NUL-terminated line being split in place):
 * spaces and tabs around it are dropped, a quoted field loses its quotes
 * ("" inside is a quote). Returns the field, NUL-terminated; *more says
 * whether a comma followed (so another field comes).
 */
static char *csv_field(char **p, int *more)
{
    char *q = *p;
    while (*q == ' ' || *q == '\t')
        q++;
    char *f = q, *w = q;
    if (*q == '"') {
        for (q++; *q != '\0'; q++) {
            if (*q == '"' && q[1] != '"') {
                q++;
                break;
            }
            if (*q == '"') q++;
            *w++ = *q;
        }
        while (*q != '\0' && *q != ',')
            q++;
    } else {
        while (*q != '\0' && *q != ',')
            q++;
        w = q;
        while (w > f && (w[-1] == ' ' || w[-1] == '\t'))
            w--;
    }
    *more = *q == ',';
    *p = *q == ',' ? q + 1 : q;
    *w = '\0';
    return f;
}

void rl_table_free(rl_table *t)
{
    if (t == NULL) return;
    free(t->x);
    free(t->y);
    if (t->names != NULL)
        for (int j = 0; j < t->features; j++)
            free(t->names[j]);
    free(t->names);
    free(t->label);
    free(t);
}

/* Whether every field of line (len bytes, not modified) is a finite number:
 * then a first line is data, not a header. */
static bool csv_all_numbers(const char *line, size_t len)
{
    char *copy = rli_malloc(len + 1);
    memcpy(copy, line, len);
    copy[len] = '\0';
    bool numbers = true;
    int more = 1;
    for (char *p = copy; more && numbers;) {
        char *s = csv_field(&p, &more), *end;
        float v = strtof(s, &end);
        numbers = end != s && *end == '\0' && isfinite(v);
    }
    free(copy);
    return numbers;
}

/* Adds a feature name to t (cap: the names array's size, grown by doubling). */
static void csv_add_name(rl_table *t, int *cap, const char *name)
{
    if (t->features == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        t->names = rli_realloc(t->names, (size_t)*cap * sizeof(char *));
    }
    t->names[t->features++] = rli_strdup(name);
}

/* A file without a header: its n_cols columns are named "1", "2", ... */
static void csv_number_columns(rl_table *t, int n_cols)
{
    for (int j = 0; j < t->features; j++)
        free(t->names[j]);
    t->features = 0;
    int cap = 0;
    char name[16];
    for (int j = 0; j < n_cols; j++) {
        snprintf(name, sizeof(name), "%d", j + 1);
        csv_add_name(t, &cap, name);
    }
    t->header = false;
}

/* Reads the header line: the feature names and the label's position. With
 * o->header_optional a first line of numbers is data: it is left in
 * *data_line (valid until the next line is read), else *data_line is NULL. */
static int csv_header(csv_reader *r, const char *path, const rl_csv_opts *o, rl_table *t,
                      int *n_cols, char **data_line, int *data_nl)
{
    const char *label = o->label;
    char *line, q[256], q2[64];
    size_t len;
    int had_nl;
    *data_line = NULL;
    int rc = csv_next_line(r, path, &line, &len, &had_nl);
    if (rc != RL_OK) return rc;
    if (line == NULL)
        return rli_err(RL_EDATA, "%s: empty file: a header row of column names is required", path);
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    rli_diag_quote(line, len, q, sizeof(q)); /* before splitting writes NULs into it */
    if (len == 0) return rli_err(RL_EDATA, "%s:1: empty header row", path);
    bool headerless = o->header_optional && label == NULL && csv_all_numbers(line, len);
    char *names_line = line;
    if (headerless) { /* keep the line intact: it is parsed as data */
        names_line = rli_malloc(len + 1);
        memcpy(names_line, line, len + 1);
    }

    int cols = 0, more = 1, cap = 0;
    t->label_col = -1;
    t->header = true;
    for (char *p = names_line; more;) {
        char *name = csv_field(&p, &more);
        cols++;
        if (cols > RL_DATA_MAX_FEATURES + (label != NULL)) {
            rc = rli_err(RL_EDATA, "%s:1: more than %d columns", path,
                         RL_DATA_MAX_FEATURES + (label != NULL));
            break;
        }
        if (headerless) continue;
        if (name[0] == '\0')
            return rli_err(RL_EDATA, "%s:1:%d: column %d has no name", path, cols, cols);
        int dup = label != NULL && strcmp(name, label) == 0 && t->label_col >= 0;
        for (int j = 0; j < t->features && !dup; j++)
            dup = strcmp(t->names[j], name) == 0;
        if (dup)
            return rli_err(RL_EDATA, "%s:1:%d: duplicate column name '%s'", path, cols,
                           rli_diag_quote(name, strlen(name), q2, sizeof(q2)));
        if (label != NULL && strcmp(name, label) == 0) {
            t->label_col = cols - 1;
            t->label = rli_strdup(name);
            continue;
        }
        csv_add_name(t, &cap, name);
    }
    if (headerless) {
        free(names_line);
        if (rc != RL_OK) return rc;
        csv_number_columns(t, cols);
        *data_line = line;
        *data_nl = had_nl;
    }
    if (rc != RL_OK) return rc;
    if (label == NULL) {
        *n_cols = cols;
        return RL_OK;
    }
    if (t->label_col < 0)
        return rli_err(RL_EDATA, "%s:1: no label column '%s' in the header (%s)", path,
                       rli_diag_quote(label, strlen(label), q2, sizeof(q2)), q);
    if (t->features == 0)
        return rli_err(RL_EDATA, "%s:1: no feature column besides the label '%s'", path,
                       rli_diag_quote(label, strlen(label), q2, sizeof(q2)));
    *n_cols = cols;
    return RL_OK;
}

/* Makes room for one more row; grows by doubling. */
static int csv_reserve(rl_table *t, int64_t *cap_rows, const char *path)
{
    if (t->rows < *cap_rows) return RL_OK;
    int64_t cap = *cap_rows ? *cap_rows * 2 : 1024;
    size_t f = (size_t)t->features;
    if ((uint64_t)cap > SIZE_MAX / sizeof(float) / f)
        return rli_err(RL_ENOMEM, "%s: %lld rows of %d features", path, (long long)cap,
                       t->features);
    float *x = realloc(t->x, (size_t)cap * f * sizeof(float));
    if (x != NULL) t->x = x;
    float *y = x != NULL && t->label_col >= 0 ? realloc(t->y, (size_t)cap * sizeof(float)) : NULL;
    if (y != NULL) t->y = y;
    if (x == NULL || (y == NULL && t->label_col >= 0))
        return rli_err(RL_ENOMEM, "%s: no memory for %lld rows of %d features", path,
                       (long long)cap, t->features);
    *cap_rows = cap;
    return RL_OK;
}

/* The name of file column c (0-based) for messages. */
static const char *csv_col_name(const rl_table *t, int c)
{
    if (c == t->label_col) return t->label;
    return t->names[t->label_col < 0 || c < t->label_col ? c : c - 1];
}

/* A label the model cannot train on, at its position. */
static int csv_bad_label(const char *path, int64_t line_no, int col, const char *qname, float v,
                         const rl_csv_opts *o)
{
    if (o->model == RL_MODEL_SOFTMAX)
        return rli_err(RL_EDATA,
                       "%s:%lld:%d: column '%s': label %g is not a class index 0 .. %d "
                       "(softmax, %d classes)",
                       path, (long long)line_no, col, qname, (double)v, o->classes - 1, o->classes);
    return rli_err(RL_EDATA, "%s:%lld:%d: column '%s': label %g is not %s", path,
                   (long long)line_no, col, qname, (double)v, rl_label_rule(o->model));
}

/* Parses one data line into row t->rows. */
static int csv_row(const char *path, int64_t line_no, char *line, int had_nl, int n_cols,
                   const rl_csv_opts *o, rl_table *t)
{
    char q[64], qn[64];
    float *x = t->x + (size_t)t->rows * (size_t)t->features;
    int c = 0, more = 1;
    for (char *p = line; more; c++) {
        char *s = csv_field(&p, &more);
        if (c >= n_cols)
            return rli_err(RL_EDATA, "%s:%lld:%d: too many fields: the header has %d columns", path,
                           (long long)line_no, c + 1, n_cols);
        const char *name = csv_col_name(t, c);
        rli_diag_quote(name, strlen(name), qn, sizeof(qn));
        if (s[0] == '\0')
            return rli_err(RL_EDATA, "%s:%lld:%d: column '%s': empty field", path,
                           (long long)line_no, c + 1, qn);
        char *end;
        errno = 0;
        float v = strtof(s, &end);
        if (end == s || *end != '\0')
            return rli_err(RL_EDATA, "%s:%lld:%d: column '%s': not a number: '%s'", path,
                           (long long)line_no, c + 1, qn,
                           rli_diag_quote(s, strlen(s), q, sizeof(q)));
        if (!isfinite(v))
            return rli_err(RL_EDATA, "%s:%lld:%d: column '%s': %s: '%s'", path, (long long)line_no,
                           c + 1, qn,
                           errno == ERANGE ? "out of the range of a float" : "not a finite number",
                           rli_diag_quote(s, strlen(s), q, sizeof(q)));
        if (c == t->label_col && o->check_labels && !rl_label_valid(o->model, o->classes, v))
            return csv_bad_label(path, line_no, c + 1, qn, v, o);
        if (c == t->label_col)
            t->y[t->rows] = v;
        else
            x[t->label_col < 0 || c < t->label_col ? c : c - 1] = v;
    }
    if (c < n_cols) {
        const char *name = csv_col_name(t, c);
        return rli_err(RL_EDATA, "%s:%lld:%d: column '%s': missing: the row has %d of %d fields%s",
                       path, (long long)line_no, c + 1,
                       rli_diag_quote(name, strlen(name), qn, sizeof(qn)), c, n_cols,
                       had_nl ? "" : " (the file ends inside this row: truncated?)");
    }
    t->rows++;
    return RL_OK;
}

int rl_csv_load(const char *path, const char *label_column, rl_table **out)
{
    rl_csv_opts o = {.label = label_column};
    return rl_csv_load_opts(path, &o, out);
}

int rl_csv_load_opts(const char *path, const rl_csv_opts *opts, rl_table **out)
{
    *out = NULL;
    static const rl_csv_opts no_opts = {0};
    const rl_csv_opts *o = opts != NULL ? opts : &no_opts;
    csv_reader r = {0};
    rl_table *t = rli_calloc(1, sizeof(*t));
    int64_t cap_rows = 0;
    int rc, n_cols = 0;
    r.f = fopen(path, "rb");
    if (r.f == NULL) {
        int e = errno;
        rc = rli_err(rli_err_from_errno(e), "%s: cannot open: %s", path, strerror(e));
        goto out;
    }
    r.cap = CSV_CHUNK * 4;
    r.buf = malloc(r.cap + 1);
    if (r.buf == NULL) {
        rc = rli_err(RL_ENOMEM, "%s: line buffer", path);
        goto out;
    }
    char *line;
    int had_nl;
    rc = csv_header(&r, path, o, t, &n_cols, &line, &had_nl);
    if (rc != RL_OK) goto out;
    if (line != NULL) { /* no header: the first line is a row */
        if ((rc = csv_reserve(t, &cap_rows, path)) != RL_OK) goto out;
        if ((rc = csv_row(path, r.line_no, line, had_nl, n_cols, o, t)) != RL_OK) goto out;
    }
    for (;;) {
        size_t len;
        if ((rc = csv_next_line(&r, path, &line, &len, &had_nl)) != RL_OK) goto out;
        if (line == NULL) break;
        if (len == 0) continue; /* blank line */
        if ((rc = csv_reserve(t, &cap_rows, path)) != RL_OK) goto out;
        if ((rc = csv_row(path, r.line_no, line, had_nl, n_cols, o, t)) != RL_OK) goto out;
    }
    if (t->rows == 0) {
        rc = rli_err(RL_EDATA, "%s: no data rows after the header", path);
        goto out;
    }
    /* Give back the unused part of the last doubling (shrinking cannot fail
     * in a way that matters: keep the old block if it does). */
    float *x = realloc(t->x, (size_t)t->rows * (size_t)t->features * sizeof(float));
    if (x != NULL) t->x = x;
    float *y = t->y != NULL ? realloc(t->y, (size_t)t->rows * sizeof(float)) : NULL;
    if (y != NULL) t->y = y;
    *out = t;
    t = NULL;
    rc = RL_OK;
out:
    if (r.f != NULL) fclose(r.f);
    free(r.buf);
    rl_table_free(t);
    return rc;
}

/* Appends "'name'" to a list in buf for a message, while it fits. */
static void csv_list_name(char *buf, size_t cap, size_t *off, const char *name)
{
    char q[64];
    if (*off >= cap - 1) return;
    int n = snprintf(buf + *off, cap - *off, "%s'%s'", *off ? ", " : "",
                     rli_diag_quote(name, strlen(name), q, sizeof(q)));
    *off += n > 0 ? (size_t)n : 0;
}

int rl_table_select(rl_table *t, const char *path, const char *const *names, int n)
{
    int *from = rli_malloc(((size_t)n + 1) * sizeof(int));
    char missing[512] = "";
    size_t off = 0;
    int n_missing = 0;
    for (int j = 0; j < n; j++) {
        from[j] = -1;
        for (int c = 0; c < t->features && from[j] < 0; c++)
            if (strcmp(t->names[c], names[j]) == 0) from[j] = c;
        if (from[j] < 0) {
            n_missing++;
            csv_list_name(missing, sizeof(missing), &off, names[j]);
        }
    }
    if (n_missing > 0) {
        free(from);
        return rli_err(RL_EDATA, "%s lacks the model's feature column%s %s", path,
                       n_missing == 1 ? "" : "s", missing);
    }
    float *x = malloc(((size_t)t->rows * (size_t)n + 1) * sizeof(float));
    if (x == NULL) {
        free(from);
        return rli_err(RL_ENOMEM, "%s: %lld rows of %d features", path, (long long)t->rows, n);
    }
    for (int64_t i = 0; i < t->rows; i++) {
        const float *src = t->x + (size_t)i * (size_t)t->features;
        float *dst = x + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            dst[j] = src[from[j]];
    }
    char **kept = rli_calloc((size_t)n + 1, sizeof(char *));
    for (int j = 0; j < n; j++)
        kept[j] = rli_strdup(names[j]);
    for (int c = 0; c < t->features; c++)
        free(t->names[c]);
    free(t->names);
    free(t->x);
    free(from);
    t->names = kept;
    t->x = x;
    t->features = n;
    return RL_OK;
}
