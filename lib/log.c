/* log.c - leveled logging to stderr, one write per line so that lines from
 * several threads and processes do not interleave. Each line starts with
 * the wall-clock time in UTC, so that the lines of the coordinator and of
 * every node sort into one story (see docs/operations.md). With
 * RINGLEADER_LOG_FORMAT=json each line is a JSON object instead. */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ringleader/log.h"
#include "ringleader/run_json.h"
#include "rli.h"

static int log_level = -1;
static int log_json; /* RINGLEADER_LOG_FORMAT=json */
static char log_tag[32] = "rl";

static void log_init(void)
{
    const char *e = getenv("RINGLEADER_LOG");
    const char *fmt = getenv("RINGLEADER_LOG_FORMAT");
    log_json = fmt != NULL && strcasecmp(fmt, "json") == 0;
    log_level = RL_LOG_INFO;
    if (e != NULL) {
        if (strcasecmp(e, "error") == 0) log_level = RL_LOG_ERROR;
        else if (strcasecmp(e, "warn") == 0) log_level = RL_LOG_WARN;
        else if (strcasecmp(e, "debug") == 0) log_level = RL_LOG_DEBUG;
    }
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

int rl_log_is_json(void)
{
    if (log_level < 0) log_init();
    return log_json;
}

void rl_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

const char *rl_log_format_time(int64_t unix_ms, char *buf, size_t size)
{
    int64_t ms = unix_ms % 1000, secs = unix_ms / 1000;
    if (ms < 0) ms += 1000, secs -= 1; /* before 1970: floor, not truncate */
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "%" PRId64 "ms", unix_ms);
        return buf;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    return buf;
}

/* One JSON object per line (RINGLEADER_LOG_FORMAT=json): time, level, node
 * (the tag), message and fields, written with one write(). */
static void log_write_json(const char *when, const char *level, const char *msg)
{
    char out[6 * 1024 + 512]; /* the message escaped: at most 6 bytes per byte */
    FILE *f = fmemopen(out, sizeof(out), "w");
    if (f == NULL) return;
    fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"node\":", when, level);
    rl_json_write_str(f, log_tag);
    fputs(",\"message\":", f);
    rl_json_write_str(f, msg);
    fprintf(f, ",\"fields\":{\"pid\":%ld}}\n", (long)getpid());
    long n = ftell(f);
    fclose(f);
    if (n <= 0 || n >= (long)sizeof(out) || out[n - 1] != '\n') return; /* never a partial object */
    ssize_t w = write(STDERR_FILENO, out, (size_t)n);
    (void)w;
}

void rl_log(rl_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024], when[RL_LOG_TIME_LEN];
    struct timespec now;
    va_list ap;
    int n;

    if (log_level < 0) log_init();
    if ((int)lvl > log_level) return;
    clock_gettime(CLOCK_REALTIME, &now);
    rl_log_format_time((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, when, sizeof(when));
    n = log_json ? 0 : snprintf(line, sizeof(line), "[%s %s %s] ", when, log_tag, names[lvl]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) n = (int)sizeof(line) - 2;
    if (log_json) {
        line[n] = '\0';
        log_write_json(when, names[lvl], line);
        return;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
