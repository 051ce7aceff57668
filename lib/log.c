/* log.c - leveled logging to stderr, one write per line so that lines from
 * several threads and processes do not interleave. */
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ringleader/log.h"
#include "rli.h"

static int log_level = -1;
static char log_tag[32] = "rl";
static uint64_t log_t0;

static void log_init(void)
{
    const char *e = getenv("RINGLEADER_LOG");
    log_level = RL_LOG_INFO;
    if (e != NULL) {
        if (strcasecmp(e, "error") == 0) log_level = RL_LOG_ERROR;
        else if (strcasecmp(e, "warn") == 0) log_level = RL_LOG_WARN;
        else if (strcasecmp(e, "debug") == 0) log_level = RL_LOG_DEBUG;
    }
    log_t0 = rli_now_us();
}

void rl_log_set_level(rl_log_level lvl)
{
    if (log_level < 0) log_init();
    log_level = (int)lvl;
}

rl_log_level rl_log_get_level(void)
{
    if (log_level < 0) log_init();
    return (rl_log_level)log_level;
}

void rl_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void rl_log(rl_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    va_list ap;
    int n;

    if (log_level < 0) log_init();
    if ((int)lvl > log_level) return;
    uint64_t t = rli_now_us() - log_t0;
    n = snprintf(line, sizeof(line), "[%6.3f %s %s] ", (double)t / 1e6, log_tag, names[lvl]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
