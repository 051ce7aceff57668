/*
 * report_html.c - the run report: a summary, then one inline SVG chart per
 * question a reader asks of a run (is it learning, where does a step's time
 * go and what happened when, who held which blocks, who waited for whom,
 * how long recoveries took, what the extra nodes bought). Static: readable
 * with JavaScript off, printable, one file.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "report_html.h"
#include "snapshot.h"
#include "ringleader/spec.h"

#define CH_W           880 /* chart size and margins, in SVG units */
#define CH_H           260
#define CH_L           72
#define CH_R           16
#define CH_T           14
#define CH_B           40
#define CH_MAX_COLUMNS 300  /* step-time bars at most; steps are averaged into them */
#define CH_MAX_POINTS  1500 /* loss points at most */

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define PALETTE_N (sizeof(palette) / sizeof(palette[0]))

/* Text for HTML and SVG: &, <, > and quotes escaped. */
static void html_text(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

typedef struct axis {
    double lo, hi;
    bool log;
} axis;

/* v's position between pixels p0 (at lo) and p1 (at hi). */
static double axis_px(const axis *a, double v, double p0, double p1)
{
    double lo = a->log ? log10(a->lo) : a->lo, hi = a->log ? log10(a->hi) : a->hi;
    double x = a->log ? log10(v) : v;
    if (!(hi > lo)) return p0;
    return p0 + (x - lo) / (hi - lo) * (p1 - p0);
}

static double chart_x(const axis *a, double v)
{
    return axis_px(a, v, CH_L, CH_W - CH_R);
}

static double chart_y(const axis *a, double v)
{
    return axis_px(a, v, CH_H - CH_B, CH_T);
}

/* A linear axis from 0 (or lo) to a round number above hi. */
static axis axis_linear(double lo, double hi)
{
    if (!(hi > lo)) hi = lo + 1;
    double span = hi - lo, step = pow(10, floor(log10(span)));
    if (span / step < 3) step /= 2;
    return (axis){lo, lo + ceil(span / step) * step, false};
}

/* A log axis over whole decades around [lo, hi] (both > 0). */
static axis axis_log(double lo, double hi)
{
    double a = pow(10, floor(log10(lo))), b = pow(10, ceil(log10(hi)));
    if (!(b > a)) b = a * 10;
    return (axis){a, b, true};
}

static void svg_open(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<figure id=\"%s\"><figcaption>", id);
    html_text(f, title);
    fprintf(f,
            "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
            "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
            CH_W, CH_H, CH_W, CH_H);
    html_text(f, title);
    fputs("\">\n", f);
}

static void svg_close(FILE *f, const char *legend_html)
{
    fputs("</svg>", f);
    if (legend_html != NULL) fputs(legend_html, f);
    fputs("</figure>\n", f);
}

/* Axes, grid lines and tick labels; xlabel/ylabel under and beside. */
static void svg_axes(FILE *f, const axis *x, const axis *y, const char *xlabel, const char *ylabel)
{
    fprintf(f, "<g class=\"axes\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", CH_L,
            CH_H - CH_B, CH_W - CH_R, CH_H - CH_B);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", CH_L, CH_T, CH_L, CH_H - CH_B);
    for (int k = 0; k <= 5; k++) { /* x: six ticks */
        double v = x->lo + (x->hi - x->lo) * k / 5.0;
        double px = chart_x(x, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.4g</text>", px,
                CH_H - CH_B + 16, v);
    }
    if (y->log) {
        for (double v = y->lo; v <= y->hi * 1.0001; v *= 10) {
            double py = chart_y(y, v);
            fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", CH_L,
                    py, CH_W - CH_R, py);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0e</text>", CH_L - 6,
                    py + 4, v);
        }
    } else {
        for (int k = 0; k <= 4; k++) {
            double v = y->lo + (y->hi - y->lo) * k / 4.0, py = chart_y(y, v);
            fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", CH_L,
                    py, CH_W - CH_R, py);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>", CH_L - 6,
                    py + 4, v);
        }
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (CH_L + CH_W - CH_R) / 2,
            CH_H - 6);
    html_text(f, xlabel);
    fprintf(f, "</text><text transform=\"translate(14,%d) rotate(-90)\" text-anchor=\"middle\">",
            (CH_T + CH_H - CH_B) / 2);
    html_text(f, ylabel);
    fputs("</text></g>\n", f);
}

/* Events other than joins as dashed verticals at their step, each with its
 * text as a tooltip and its kind as a label. */
static void svg_event_marks(FILE *f, const rl_run_record *rec, const axis *x)
{
    const rl_run_report *r = &rec->r;
    fputs("<g class=\"events\">", f);
    for (size_t k = 0; k < r->n_events; k++) {
        const rl_run_event *e = &r->events[k];
        if (strcmp(e->kind, "join") == 0 || e->step < 0) continue;
        double px = chart_x(x, (double)e->step);
        if (px < CH_L || px > CH_W - CH_R) continue;
        fprintf(f, "<g class=\"ev-%s\"><title>step %lld: ", e->kind, (long long)e->step);
        html_text(f, e->kind);
        fputs(" ", f);
        html_text(f, e->node);
        fputs(" ", f);
        html_text(f, e->detail);
        fprintf(f, "</title><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", px, CH_T, px,
                CH_H - CH_B);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\">", px + 3, CH_T + 10 + (int)(k % 3) * 11);
        html_text(f, e->kind);
        fputs("</text></g>", f);
    }
    fputs("</g>\n", f);
}

static void chart_loss(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    double lo = INFINITY, hi = 0, last = 0;
    for (size_t k = 0; k < r->n_steps; k++) {
        double l = r->steps[k].loss;
        if (isfinite(l) && l > 0) {
            lo = fmin(lo, l);
            hi = fmax(hi, l);
        }
        last = fmax(last, (double)r->steps[k].step);
    }
    if (!(hi > 0)) {
        fputs("<p class=\"none\">No positive loss was recorded (program mode, or no step "
              "completed).</p>\n",
              f);
        return;
    }
    axis x = axis_linear(0, last + 1), y = axis_log(lo, hi);
    svg_open(f, "loss", "Training loss by step (log scale)");
    svg_axes(f, &x, &y, "step", "loss");
    size_t stride = r->n_steps / CH_MAX_POINTS + 1;
    fputs("<polyline class=\"loss\" points=\"", f);
    for (size_t k = 0; k < r->n_steps; k += stride) {
        double l = r->steps[k].loss;
        if (isfinite(l) && l > 0)
            fprintf(f, "%.1f,%.1f ", chart_x(&x, (double)r->steps[k].step), chart_y(&y, l));
    }
    fputs("\"/>\n", f);
    svg_event_marks(f, rec, &x);
    svg_close(f, NULL);
}

static void chart_step_time(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    if (r->n_steps == 0) {
        fputs("<p class=\"none\">No step completed.</p>\n", f);
        return;
    }
    size_t nb = r->n_steps < CH_MAX_COLUMNS ? r->n_steps : CH_MAX_COLUMNS;
    double *comp = calloc(nb, sizeof(double)), *ar = calloc(nb, sizeof(double)), top = 0;
    double *s0 = calloc(nb, sizeof(double)), *s1 = calloc(nb, sizeof(double));
    for (size_t b = 0; b < nb; b++) {
        size_t from = b * r->n_steps / nb, to = (b + 1) * r->n_steps / nb, n = 0;
        for (size_t k = from; k < to; k++) {
            double ms = r->steps[k].ms, a = r->steps[k].allreduce_ms;
            if (!isfinite(ms) || !isfinite(a)) continue;
            comp[b] += fmax(ms - a, 0);
            ar[b] += a;
            n++;
        }
        if (n > 0) comp[b] /= (double)n, ar[b] /= (double)n;
        top = fmax(top, comp[b] + ar[b]);
        s0[b] = (double)r->steps[from].step;
        s1[b] = (double)r->steps[to - 1].step + 1;
    }
    axis x = axis_linear(0, s1[nb - 1]), y = axis_linear(0, top);
    svg_open(f, "steptime", "Step time by step: compute and all-reduce (events marked)");
    svg_axes(f, &x, &y, "step", "ms per step");
    for (size_t b = 0; b < nb; b++) {
        double x0 = chart_x(&x, s0[b]), x1 = chart_x(&x, s1[b]), w = fmax(x1 - x0 - 0.2, 0.6);
        double yc = chart_y(&y, comp[b]), yt = chart_y(&y, comp[b] + ar[b]);
        fprintf(
            f,
            "<rect class=\"compute\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
            "<rect class=\"allreduce\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
            x0, yc, w, (CH_H - CH_B) - yc, x0, yt, w, yc - yt);
    }
    svg_event_marks(f, rec, &x);
    svg_close(f, "<p class=\"legend\"><span class=\"sw compute\"></span>compute (the step's time "
                 "outside the all-reduce) <span class=\"sw allreduce\"></span>all-reduce</p>");
    free(comp);
    free(ar);
    free(s0);
    free(s1);
}

/* The blocks each node held, from every reassign event to the run's end. */
static void chart_blocks(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    size_t nplans = 0;
    for (size_t k = 0; k < r->n_events; k++)
        nplans += strcmp(r->events[k].kind, "reassign") == 0;
    if (nplans == 0 || r->n_nodes == 0) {
        fputs("<p class=\"none\">No block assignment was recorded.</p>\n", f);
        return;
    }
    size_t nn = r->n_nodes;
    double *t = calloc(nplans + 1, sizeof(double)), top = 1;
    int *held = calloc((nplans + 1) * nn, sizeof(int));
    char ids[SNAP_MAX_PLAN_NODES][RL_ID_MAX];
    int counts[SNAP_MAX_PLAN_NODES];
    size_t p = 0;
    for (size_t k = 0; k < r->n_events; k++) {
        if (strcmp(r->events[k].kind, "reassign") != 0) continue;
        t[p] = r->events[k].t_ms / 1e3;
        int n = snapshot_block_counts(r->events[k].detail, ids, counts, SNAP_MAX_PLAN_NODES);
        for (int c = 0; c < n; c++)
            for (size_t i = 0; i < nn; i++)
                if (strcmp(ids[c], r->nodes[i].id) == 0) {
                    held[p * nn + i] = counts[c];
                    top = fmax(top, counts[c]);
                }
        p++;
    }
    double end = fmax(r->wall_s, t[nplans - 1] + 0.001);
    axis x = axis_linear(0, end), y = axis_linear(0, top);
    svg_open(f, "blocks", "Blocks held by each node over time (from each re-plan)");
    svg_axes(f, &x, &y, "seconds since start", "blocks");
    for (size_t i = 0; i < nn; i++) {
        fprintf(f, "<polyline class=\"node\" stroke=\"%s\" points=\"", palette[i % PALETTE_N]);
        for (size_t q = 0; q < nplans; q++) {
            double next = q + 1 < nplans ? t[q + 1] : end, v = held[q * nn + i];
            fprintf(f, "%.1f,%.1f %.1f,%.1f ", chart_x(&x, t[q]), chart_y(&y, v), chart_x(&x, next),
                    chart_y(&y, v));
        }
        fputs("\"><title>", f);
        html_text(f, r->nodes[i].id);
        fputs("</title></polyline>\n", f);
    }
    fputs("</svg><p class=\"legend\">", f);
    for (size_t i = 0; i < nn; i++) {
        fprintf(f, "<span class=\"sw\" style=\"background:%s\"></span>", palette[i % PALETTE_N]);
        html_text(f, r->nodes[i].id);
        fputs(" ", f);
    }
    fputs("</p></figure>\n", f);
    free(t);
    free(held);
}

/* Per node: mean compute per step, and the rest of the step (waiting for
 * the slowest member and the all-reduce). */
static void chart_node_time(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    size_t nn = r->n_nodes;
    double *comp = calloc(nn + 1, sizeof(double)), *wait = calloc(nn + 1, sizeof(double)), top = 0;
    bool any = false;
    for (size_t i = 0; i < nn; i++) {
        size_t n = 0;
        for (size_t k = 0; k < r->n_steps; k++) {
            const rl_run_step *s = &r->steps[k];
            if (s->compute_ms == NULL || i >= s->n_compute || !isfinite(s->compute_ms[i]) ||
                !isfinite(s->ms))
                continue;
            comp[i] += s->compute_ms[i];
            wait[i] += fmax(s->ms - s->compute_ms[i], 0);
            n++;
        }
        if (n > 0) {
            comp[i] /= (double)n;
            wait[i] /= (double)n;
            any = true;
        }
        top = fmax(top, comp[i] + wait[i]);
    }
    if (!any) {
        fputs("<p class=\"none\">No per-node compute times were recorded.</p>\n", f);
        free(comp);
        free(wait);
        return;
    }
    int row = 22, h = CH_T + (int)nn * row + CH_B;
    axis x = axis_linear(0, top);
    fputs("<figure id=\"nodetime\"><figcaption>Mean time per step by node: compute and waiting "
          "(the rest of the step: the all-reduce and the slowest member)</figcaption>\n",
          f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
            "height=\"%d\" role=\"img\" aria-label=\"compute and waiting by node\">\n",
            CH_W, h, CH_W, h);
    for (size_t i = 0; i < nn; i++) {
        double y0 = CH_T + (double)i * row, xc = chart_x(&x, comp[i]),
               xw = chart_x(&x, comp[i] + wait[i]);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", CH_L - 6, y0 + 14);
        html_text(f, r->nodes[i].id);
        fprintf(f,
                "</text><rect class=\"compute\" x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"16\">"
                "<title>compute %.3f ms</title></rect><rect class=\"wait\" x=\"%.1f\" y=\"%.1f\" "
                "width=\"%.1f\" height=\"16\"><title>waiting %.3f ms</title></rect>\n",
                CH_L, y0 + 2, xc - CH_L, comp[i], xc, y0 + 2, xw - xc, wait[i]);
    }
    double ya = CH_T + (double)nn * row + 4;
    for (int k = 0; k <= 5; k++) {
        double v = x.hi * k / 5.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>", chart_x(&x, v),
                ya + 12, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">ms per step</text>",
            (CH_L + CH_W - CH_R) / 2, ya + 30);
    fputs("</svg><p class=\"legend\"><span class=\"sw compute\"></span>compute <span "
          "class=\"sw wait\"></span>waiting</p></figure>\n",
          f);
    free(comp);
    free(wait);
}

static void table_recoveries(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    fputs("<h2>Failures and recoveries</h2>\n", f);
    size_t n = 0;
    for (size_t k = 0; k < r->n_events; k++)
        n += strcmp(r->events[k].kind, "failed") == 0;
    if (n == 0) {
        fputs("<p class=\"none\">No node failed.</p>\n", f);
        return;
    }
    fputs("<table id=\"recoveries\"><tr><th>node</th><th>at (s)</th><th>step</th>"
          "<th>recovery (ms)</th><th>why</th></tr>\n",
          f);
    for (size_t k = 0; k < r->n_events; k++) {
        const rl_run_event *e = &r->events[k];
        if (strcmp(e->kind, "failed") != 0) continue;
        fputs("<tr><td>", f);
        html_text(f, e->node);
        fprintf(f, "</td><td>%.3f</td><td>%lld</td><td>", e->t_ms / 1e3, (long long)e->step);
        if (e->recovery_ms >= 0)
            fprintf(f, "%.0f", e->recovery_ms);
        else
            fputs("never (no step completed after it)", f);
        fputs("</td><td>", f);
        html_text(f, e->detail);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void section_speedup(FILE *f, const rl_run_record *rec)
{
    if (!isfinite(rec->speedup)) return;
    fputs("<h2>Speed-up</h2>\n", f);
    fprintf(f,
            "<p id=\"speedup\">Speed-up <b>%.2f&times;</b>: the baseline's median step %.3f ms "
            "(%d node%s, ",
            rec->speedup, rec->baseline_step_ms, rec->baseline_nodes,
            rec->baseline_nodes == 1 ? "" : "s");
    html_text(f, rec->r.baseline);
    fprintf(f, ") over this run's %.3f ms on %zu nodes.</p>\n", rec->step_ms_p50, rec->r.n_nodes);
    double top = fmax(rec->baseline_step_ms, rec->step_ms_p50);
    if (!(top > 0)) return;
    fputs("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 880 70\" width=\"880\" "
          "height=\"70\" role=\"img\" aria-label=\"median step, baseline and this run\">",
          f);
    double w0 = 700 * rec->baseline_step_ms / top, w1 = 700 * rec->step_ms_p50 / top;
    fprintf(f,
            "<text x=\"120\" y=\"22\" text-anchor=\"end\">baseline</text><rect class=\"wait\" "
            "x=\"130\" y=\"8\" width=\"%.1f\" height=\"20\"/>"
            "<text x=\"120\" y=\"54\" text-anchor=\"end\">this run</text><rect class=\"compute\" "
            "x=\"130\" y=\"40\" width=\"%.1f\" height=\"20\"/></svg>\n",
            w0, w1);
}

static void table_summary(FILE *f, const rl_run_record *rec, const char *path)
{
    const rl_run_report *r = &rec->r;
    fputs("<table id=\"summary\">", f);
    fputs("<tr><th>run</th><td>", f);
    html_text(f, path);
    fputs("</td></tr><tr><th>status</th><td class=\"st-", f);
    html_text(f, rec->status);
    fputs("\">", f);
    html_text(f, rec->status);
    if (r->error != NULL && !r->ok) {
        fputs(": ", f);
        html_text(f, r->error);
    }
    fprintf(f,
            "</td></tr><tr><th>steps</th><td>%llu of %llu</td></tr>"
            "<tr><th>final loss</th><td>%.6g</td></tr>"
            "<tr><th>step time</th><td>p50 %.3f ms, p99 %.3f ms</td></tr>"
            "<tr><th>wall time</th><td>%.3f s</td></tr>"
            "<tr><th>nodes</th><td>%zu, epoch %llu at the end, %u blocks</td></tr></table>\n",
            (unsigned long long)r->steps_completed, (unsigned long long)r->steps_total,
            r->final_loss, rec->step_ms_p50, rec->step_ms_p99, r->wall_s, r->n_nodes,
            (unsigned long long)r->epoch, r->blocks_total);
    fputs("<table id=\"nodes\"><tr><th>node</th><th>state</th><th>blocks at the end</th>"
          "<th>rows</th><th>compute p50 (ms)</th><th>rows/s</th></tr>\n",
          f);
    for (size_t i = 0; i < r->n_nodes; i++) {
        const rl_run_node *n = &r->nodes[i];
        fputs("<tr><td>", f);
        html_text(f, n->id);
        fputs("</td><td class=\"st-", f);
        html_text(f, n->state);
        fputs("\">", f);
        html_text(f, n->state);
        fprintf(f, "</td><td>%zu</td><td>%lld</td><td>%.3f</td><td>%.4g</td></tr>\n", n->n_blocks,
                (long long)n->rows, n->compute_ms_p50, n->rows_per_s);
    }
    fputs("</table>\n", f);
}

static void table_events(FILE *f, const rl_run_record *rec)
{
    const rl_run_report *r = &rec->r;
    fputs("<h2>Events</h2>\n<table id=\"events\"><tr><th>at (s)</th><th>step</th><th>kind</th>"
          "<th>node</th><th>detail</th></tr>\n",
          f);
    for (size_t k = 0; k < r->n_events; k++) {
        const rl_run_event *e = &r->events[k];
        fprintf(f, "<tr><td>%.3f</td><td>%lld</td><td>", e->t_ms / 1e3, (long long)e->step);
        html_text(f, e->kind);
        fputs("</td><td>", f);
        html_text(f, e->node);
        fputs("</td><td>", f);
        html_text(f, e->detail);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static const char report_css[] =
    "body{font:14px/1.4 sans-serif;margin:24px;color:#222;background:#fff;max-width:940px}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}"
    "figure{margin:18px 0}figcaption{font-weight:bold;margin-bottom:4px}"
    "svg text{font:11px sans-serif;fill:#333}.axes line{stroke:#444}"
    ".axes .grid{stroke:#e4e4e4}.loss{fill:none;stroke:#1f77b4;stroke-width:1.5}"
    ".compute{fill:#4c8fd6}.allreduce{fill:#f2a541}.wait{fill:#c9c9c9}"
    ".node{fill:none;stroke-width:2}.events line{stroke:#d62728;stroke-dasharray:4 3}"
    ".events text{fill:#d62728}.ev-reassign line{stroke:#7f7f7f}.ev-reassign text{fill:#555}"
    ".legend{margin:2px 0 0 72px}.sw{display:inline-block;width:12px;height:12px;"
    "margin:0 4px 0 10px;vertical-align:middle}.sw.compute{background:#4c8fd6}"
    ".sw.allreduce{background:#f2a541}.sw.wait{background:#c9c9c9}"
    ".st-failed{color:#b00}.st-ok,.st-alive{color:#070}.none{color:#666}";

void report_html_write(const rl_run_record *rec, const char *path, FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width\"><title>Ringleader run: ",
          f);
    html_text(f, path);
    fprintf(f, "</title><style>%s</style></head>\n<body>\n<h1>Ringleader run report</h1>\n",
            report_css);
    table_summary(f, rec, path);
    fputs("<h2>Loss</h2>\n", f);
    chart_loss(f, rec);
    fputs("<h2>Step time</h2>\n", f);
    chart_step_time(f, rec);
    fputs("<h2>Blocks</h2>\n", f);
    chart_blocks(f, rec);
    fputs("<h2>Compute and waiting by node</h2>\n", f);
    chart_node_time(f, rec);
    table_recoveries(f, rec);
    section_speedup(f, rec);
    table_events(f, rec);
    fputs("</body></html>\n", f);
}
