/*
 * dashboard.h - the monitor's live page (coordinator/dashboard.html), built
 * into the binary by embed.cmake: dashboard_html_len bytes (and a NUL).
 */
#ifndef RL_DASHBOARD_H
#define RL_DASHBOARD_H

#include <stddef.h>

extern const char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
