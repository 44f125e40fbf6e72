/* Test driver of rnnslim_panels.h (tests/quantize/test_int8_panels.py): the whole panels product
   y = W x of a packed matrix, block by block, on the SIMD path the build flags select. */
#include "rnnslim_core.h"
#include "rnnslim_panels.h"

int rs_panels_simd_level(void) { return RS_SIMD; }

void rs_panels_matvec(const int8_t *w, const uint8_t *idx, const int32_t *ptr, const int32_t *corr,
                      int rows_p, int cols_p, const int8_t *x, int32_t *y) {
    const int NP = (cols_p + RS_PANEL_COLS - 1) / RS_PANEL_COLS;
    uint8_t u[4096]; /* cols_p <= 4096 in the tests */
    int k, b;
    for (k = 0; k < cols_p; k++) u[k] = (uint8_t)x[k] ^ 0x80;
    for (b = 0; b < rows_p / RB; b++) {
        const int32_t *pb = ptr + (size_t)b * NP;
        rs_panels_block(w + 64 * (size_t)pb[0], idx + 64 * (size_t)pb[0], pb, corr + (size_t)b * RB, NP, cols_p, x, u,
                     y + (size_t)b * RB);
    }
}
