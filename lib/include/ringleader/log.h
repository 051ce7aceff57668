/*
 * log.h - leveled logging to stderr. One line per event, prefixed with the
 * wall-clock time (UTC, milliseconds), the program's role ("coord", "n2")
 * and the level:
 *     [2026-12-02T17:03:37.123Z coord info] node n1 joined (...)
 * or, with RINGLEADER_LOG_FORMAT=json, one JSON object per line:
 *     {"time":"2026-12-02T17:03:37.123Z","level":"info","node":"coord",
 *      "message":"node n1 joined (...)","fields":{"pid":4242}}
 */
#ifndef RINGLEADER_LOG_H
#define RINGLEADER_LOG_H

#include "export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { RL_LOG_ERROR = 0, RL_LOG_WARN = 1, RL_LOG_INFO = 2, RL_LOG_DEBUG = 3 } rl_log_level;

/* Sets the level (default INFO, or RINGLEADER_LOG=error|warn|info|debug) and the tag. */
RL_API void rl_log_set_level(rl_log_level lvl);
RL_API void rl_log_set_tag(const char *tag);
RL_API rl_log_level rl_log_get_level(void);
/* True when RINGLEADER_LOG_FORMAT=json: lines are JSON objects, and a
 * program's own stderr lines (progress) should go through rl_log too. */
RL_API int rl_log_is_json(void);

/* Bytes that rl_log_format_time needs: "2026-12-02T17:03:37.123Z" and a NUL. */
#define RL_LOG_TIME_LEN 32

/*
 * Writes unix_ms (milliseconds since 1970-01-01 UTC) into buf as ISO-8601
 * UTC with milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ", cut to size. Returns buf.
 */
RL_API const char *rl_log_format_time(int64_t unix_ms, char *buf, size_t size);

/* Writes one line to stderr if lvl is at or above the level set. */
RL_API void rl_log(rl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rl_log_error(...) rl_log(RL_LOG_ERROR, __VA_ARGS__)
#define rl_log_warn(...) rl_log(RL_LOG_WARN, __VA_ARGS__)
#define rl_log_info(...) rl_log(RL_LOG_INFO, __VA_ARGS__)
#define rl_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rl_log_get_level() >= RL_LOG_DEBUG) rl_log(RL_LOG_DEBUG, __VA_ARGS__);                 \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
