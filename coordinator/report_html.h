/*
 * report_html.h - a run.json as one self-contained HTML page: inline SVG
 * charts and tables, no script, no external resource (`ringleader report`).
 */
#ifndef RL_REPORT_HTML_H
#define RL_REPORT_HTML_H

#include <stdio.h>

#include "ringleader/run_json.h"

/* Writes the report of rec (read from path, named in the title) to f. */
void report_html_write(const rl_run_record *rec, const char *path, FILE *f);

#endif
