/* hostfile.c - mpirun-style hostfiles (`HOST [slots=K]` lines) for
 * cluster.nodes_file; see hostfile.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "hostfile.h"
#include "rli.h"

#define HOSTFILE_LINE_MAX 4096 /* bytes of one line */

static void hostfile_error(rli_hostfile *hf, const char *name, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void hostfile_error(rli_hostfile *hf, const char *name, size_t line, const char *fmt, ...)
{
    if (hf->n_errors < RLI_HOSTFILE_MAX_ERRORS) {
        char *e = hf->errors[hf->n_errors];
        int n = line > 0 ? snprintf(e, RLI_HOSTFILE_ERROR_MAX, "%s:%zu: ", name, line)
                         : snprintf(e, RLI_HOSTFILE_ERROR_MAX, "%s: ", name);
        if (n > 0 && n < RLI_HOSTFILE_ERROR_MAX) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e + n, RLI_HOSTFILE_ERROR_MAX - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    hf->n_errors++;
}

/* A host name or IPv4 address: letters, digits, '.', '-' and '_'. */
static int hostfile_host_ok(const char *h)
{
    if (!isalnum((unsigned char)h[0])) return 0;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') return 0;
    return 1;
}

/* Copies a word of user text into buf for a message, control characters as '?'. */
static const char *hostfile_quote(const char *w, size_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size; i++)
        buf[k++] = isprint((unsigned char)w[i]) ? w[i] : '?';
    if (k + 4 >= size && n > k) memcpy(buf + k, "...", 3), k += 3;
    buf[k] = '\0';
    return buf;
}

/* "slots=K": K into *slots. 0, or -1 with the reason in why. */
static int hostfile_slots(const char *w, size_t n, int *slots, char *why, size_t size)
{
    char q[80];
    hostfile_quote(w, n, q, sizeof(q));
    if (n < 6 || memcmp(w, "slots=", 6) != 0) {
        snprintf(why, size, "unknown '%s' (expected slots=K after the host)", q);
        return -1;
    }
    long k = 0;
    size_t i = 6;
    for (; i < n && isdigit((unsigned char)w[i]) && k <= RL_SPEC_MAX_NODES; i++)
        k = k * 10 + (w[i] - '0');
    if (i == 6 || i < n || k < 1 || k > RL_SPEC_MAX_NODES) {
        snprintf(why, size, "'%s': slots must be a number from 1 to %d", q, RL_SPEC_MAX_NODES);
        return -1;
    }
    *slots = (int)k;
    return 0;
}

/* Adds slots to host h (a new entry, or one named on an earlier line). */
static void hostfile_add(rli_hostfile *hf, const char *h, int slots, size_t line)
{
    for (size_t i = 0; i < hf->n; i++) {
        if (strcmp(hf->hosts[i].name, h) == 0) {
            hf->hosts[i].slots += slots;
            hf->total_slots += slots;
            return;
        }
    }
    hf->hosts = rli_realloc(hf->hosts, (hf->n + 1) * sizeof(hf->hosts[0]));
    rli_host *e = &hf->hosts[hf->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", h);
    e->slots = slots;
    e->line = line;
    hf->total_slots += slots;
}

/* One line, without its newline and comment: "HOST [slots=K]" or blank. */
static void hostfile_line(rli_hostfile *hf, const char *name, size_t line, const char *s, size_t n)
{
    const char *words[3];
    size_t lens[3];
    int nw = 0;
    char q[80], why[200];
    for (size_t i = 0; i < n;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
            i++;
        if (i == n) break;
        size_t j = i;
        while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\r')
            j++;
        if (nw < 3) {
            words[nw] = s + i;
            lens[nw] = j - i;
        }
        nw++;
        i = j;
    }
    if (nw == 0) return;
    hostfile_quote(words[0], lens[0], q, sizeof(q));
    if (lens[0] > RLI_HOSTFILE_HOST_MAX) {
        hostfile_error(hf, name, line, "host '%s' is longer than %d characters", q,
                       RLI_HOSTFILE_HOST_MAX);
        return;
    }
    char host[RLI_HOSTFILE_HOST_MAX + 1];
    memcpy(host, words[0], lens[0]);
    host[lens[0]] = '\0';
    if (strchr(host, ':') != NULL || strchr(host, '[') != NULL) {
        hostfile_error(hf, name, line,
                       "'%s': write a host name or an IPv4 address (no port, no IPv6)", q);
        return;
    }
    if (!hostfile_host_ok(host)) {
        hostfile_error(hf, name, line,
                       "'%s' is not a host name (letters, digits, '.', '-' and '_')", q);
        return;
    }
    int slots = 1;
    if (nw >= 2 && hostfile_slots(words[1], lens[1], &slots, why, sizeof(why)) != 0) {
        hostfile_error(hf, name, line, "%s", why);
        return;
    }
    if (nw >= 3) {
        hostfile_error(hf, name, line, "'%s' after slots= (one slots=K per line)",
                       hostfile_quote(words[2], lens[2], q, sizeof(q)));
        return;
    }
    if (hf->total_slots + slots > RL_SPEC_MAX_NODES) {
        hostfile_error(hf, name, line, "more than %d nodes in all", RL_SPEC_MAX_NODES);
        return;
    }
    hostfile_add(hf, host, slots, line);
}

int rli_hostfile_parse(const char *name, const char *text, size_t len, rli_hostfile *hf)
{
    memset(hf, 0, sizeof(*hf));
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        line++;
        const char *hash = memchr(text + i, '#', end - i);
        size_t n = (hash != NULL ? (size_t)(hash - text) : end) - i;
        if (memchr(text + i, '\0', end - i) != NULL)
            hostfile_error(hf, name, line, "contains a NUL character");
        else if (end - i > HOSTFILE_LINE_MAX)
            hostfile_error(hf, name, line, "line over %d bytes", HOSTFILE_LINE_MAX);
        else
            hostfile_line(hf, name, line, text + i, n);
        i = end + 1;
    }
    if (hf->n_errors == 0 && hf->n == 0)
        hostfile_error(hf, name, 0, "no hosts (write one `HOST [slots=K]` per line)");
    if (hf->n_errors > 0) return rli_err(RL_ECONFIG, "%s", hf->errors[0]);
    return RL_OK;
}

int rli_hostfile_load(const char *path, rli_hostfile *hf)
{
    memset(hf, 0, sizeof(*hf));
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        hostfile_error(hf, path, 0, "cannot open: %s", strerror(e));
        return rli_err(rli_err_from_errno(e), "%s", hf->errors[0]);
    }
    char *buf = rli_malloc(RLI_HOSTFILE_MAX_BYTES + 1);
    size_t n = fread(buf, 1, RLI_HOSTFILE_MAX_BYTES + 1, f);
    int rc, e = ferror(f) ? errno : 0;
    fclose(f);
    if (e != 0) {
        hostfile_error(hf, path, 0, "cannot read: %s", strerror(e));
        rc = rli_err(RL_EIO, "%s", hf->errors[0]);
    } else if (n > RLI_HOSTFILE_MAX_BYTES) {
        hostfile_error(hf, path, 0, "over %u bytes", RLI_HOSTFILE_MAX_BYTES);
        rc = rli_err(RL_ECONFIG, "%s", hf->errors[0]);
    } else {
        rc = rli_hostfile_parse(path, buf, n, hf);
    }
    free(buf);
    return rc;
}

void rli_hostfile_fini(rli_hostfile *hf)
{
    free(hf->hosts);
    hf->hosts = NULL;
    hf->n = 0;
}
