/*
 * cmd_report.c - `ringleader report RUN_JSON [-o report.html]`: a run's
 * record as one self-contained HTML page (report_html.c). Written to a
 * temporary file beside the output and renamed, so a reader never sees
 * half a report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "report_html.h"
#include "ringleader/err.h"
#include "ringleader/run_json.h"

static void report_usage(FILE *f)
{
    fprintf(f, "usage: ringleader report RUN_JSON [-o report.html]\n\n"
               "Writes the run's report: one HTML file with inline SVG charts (loss, step\n"
               "time split into compute and all-reduce with the events marked, blocks per\n"
               "node over time, compute and waiting per node, recoveries, speed-up when the\n"
               "run has one), readable with JavaScript off. Default output: report.html\n"
               "beside RUN_JSON; -o - writes to standard output.\n"
               "Exit codes: 0 ok, 1 cannot write, 2 bad usage or not a run.json.\n");
}

/* RUN_JSON's directory + "/report.html". */
static char *report_default_out(const char *run_json)
{
    const char *slash = strrchr(run_json, '/');
    size_t dir = slash ? (size_t)(slash - run_json) + 1 : 0;
    char *out = malloc(dir + sizeof("report.html"));
    if (out == NULL) return NULL;
    memcpy(out, run_json, dir);
    memcpy(out + dir, "report.html", sizeof("report.html"));
    return out;
}

static int report_write_file(const rl_run_record *rec, const char *in, const char *out)
{
    if (strcmp(out, "-") == 0) {
        report_html_write(rec, in, stdout);
        return fflush(stdout) == 0 ? RL_EXIT_OK : RL_EXIT_FAILED;
    }
    size_t n = strlen(out) + 32;
    char *tmp = malloc(n);
    if (tmp == NULL) return RL_EXIT_FAILED;
    snprintf(tmp, n, "%s.tmp.%ld", out, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        perror(tmp);
        fprintf(stderr, "ringleader report: cannot write %s\n", out);
        free(tmp);
        return RL_EXIT_FAILED;
    }
    report_html_write(rec, in, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, out) != 0) {
        perror(out);
        fprintf(stderr, "ringleader report: cannot write %s\n", out);
        unlink(tmp);
        free(tmp);
        return RL_EXIT_FAILED;
    }
    free(tmp);
    printf("report: %s\n", out);
    return RL_EXIT_OK;
}

int cmd_report(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        report_usage(stdout);
        return RL_EXIT_OK;
    }
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ringleader report: %s needs a file name\n", argv[i]);
                report_usage(stderr);
                return RL_EXIT_USAGE;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ringleader report: unknown option %s\n", argv[i]);
            report_usage(stderr);
            return RL_EXIT_USAGE;
        } else if (in != NULL) {
            fprintf(stderr, "ringleader report: one RUN_JSON only ('%s' and '%s')\n", in, argv[i]);
            return RL_EXIT_USAGE;
        } else {
            in = argv[i];
        }
    }
    if (in == NULL) {
        fprintf(stderr, "ringleader report: the RUN_JSON is required\n");
        report_usage(stderr);
        return RL_EXIT_USAGE;
    }
    rl_run_record *rec = NULL;
    if (rl_run_json_read(in, &rec) != RL_OK) {
        fprintf(stderr, "ringleader report: %s\n", rl_errdetail());
        return RL_EXIT_USAGE;
    }
    char *def = out == NULL ? report_default_out(in) : NULL;
    int rc = report_write_file(rec, in, out != NULL ? out : def);
    free(def);
    rl_run_record_free(rec);
    return rc;
}
