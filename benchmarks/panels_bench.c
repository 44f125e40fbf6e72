/* Timing driver of benchmarks/panels_bench.py: thread CPU time of one product y = W x, dense
   (rnnslim_core.h matvec) vs panels (rnnslim_panels.h), averaged over reps calls. */
#define _POSIX_C_SOURCE 199309L
#include <time.h>
#include "rnnslim_core.h"
#include "rnnslim_panels.h"

int bench_simd_level(void) { return RS_SIMD; }

static double thread_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void unsigned_codes(uint8_t *u, const int8_t *x, int n) {
    int k;
    for (k = 0; k < n; k++) u[k] = (uint8_t)x[k] ^ 0x80;
}

double bench_dense(const int8_t *w, const int32_t *corr, int rows_p, int cols_p, const int8_t *x, int32_t *y, int reps) {
    rs_mat m;
    uint8_t u[4096];
    double t0;
    int r;
    memset(&m, 0, sizeof m);
    m.rows = m.rows_p = rows_p;
    m.cols = m.cols_p = cols_p;
    m.w = w;
    m.corr = corr;
    unsigned_codes(u, x, cols_p);
    t0 = thread_ns();
    for (r = 0; r < reps; r++) {
        matvec(&m, x, u, y);
        __asm__ __volatile__("" ::: "memory");
    }
    return (thread_ns() - t0) / reps;
}

double bench_panels(const int8_t *w, const uint8_t *idx, const int32_t *ptr, const int32_t *corr, int rows_p, int cols_p,
                    const int8_t *x, int32_t *y, int reps) {
    const int NP = (cols_p + RS_PANEL_COLS - 1) / RS_PANEL_COLS;
    uint8_t u[4096];
    double t0;
    int r, b;
    unsigned_codes(u, x, cols_p);
    t0 = thread_ns();
    for (r = 0; r < reps; r++) {
        for (b = 0; b < rows_p / RB; b++) {
            const int32_t *pb = ptr + (size_t)b * NP;
            rs_panels_block(w + 64 * (size_t)pb[0], idx + 64 * (size_t)pb[0], pb, corr + (size_t)b * RB, NP, cols_p, x, u,
                         y + (size_t)b * RB);
        }
        __asm__ __volatile__("" ::: "memory");
    }
    return (thread_ns() - t0) / reps;
}
