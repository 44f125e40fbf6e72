/*
 * rnnslim_panels.h: the "panels" sparse int8 product (panels.py): balanced per-row sparsity, the
 * pattern N:M pruning makes, run at the speed of its kept codes (issue 22).
 *
 * Included by rnnslim_core.h after its tile helpers (RB, KB, RS_SIMD, load4, RS_ALIGN64); it needs
 * nothing else, so a test may include it after the core too. Layout (panels.py): per row block b
 * and 64-column panel p, groups panel_ptr[b NP + p] .. panel_ptr[b NP + p + 1]; group g is 64 codes
 * w[64 g ..] (lane r = row 16 b + r holds its 4 codes) and 64 column offsets idx[64 g ..] inside the
 * panel, byte for byte. Padding slots hold code 0, so the VNNI correction (128 * row sum) is the
 * dense one.
 *
 * Paths, all exact (the same int8 x int8 products in int32 as the dense product, zeros skipped):
 *   AVX512-VBMI + VNNI  per panel one load of its 64 unsigned codes u; per group one vpermb by the
 *                       64 offsets gives every lane its own 4 codes, one vpdpbusd with the 64 weights
 *   AVX-512 without VBMI the same with the 64 codes gathered by index into a stack buffer
 *   AVX2                the panel's 4 16-byte chunks broadcast once; per half group 4 vpshufb and 3
 *                       vpblendvb (offset bits 4, 5 pick the chunk) gather 32 codes, then the
 *                       vpmaddubsw + vpmaddwd of tile_avx2 (codes in [-127, 127], as the kernel's)
 *   NEON (AArch64)      per 16 codes one vqtbl4q (a 64-byte table lookup) and tile_neon's vmull + vpadal
 *   ARMv7 NEON / C      one multiply-add per stored code, its input code read by index
 */
#ifndef RNNSLIM_PANELS_H
#define RNNSLIM_PANELS_H

#define RS_PANEL_COLS 64 /* columns per panel: the codes one byte permute gathers from */

#if RS_SIMD == 3
/* the 64 unsigned codes of group g (offsets ig[64 g ..] into the panel's codes up) */
static inline __m512i rs_panel_codes(__m512i panel, const uint8_t *up, const uint8_t *ig) {
#if defined(__AVX512VBMI__)
    (void)up;
    return _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)ig), panel);
#else
    RS_ALIGN64 uint8_t gx[64];
    int k;
    (void)panel;
    for (k = 0; k < 64; k++) gx[k] = up[ig[k]];
    return _mm512_load_si512((const void *)gx);
#endif
}

/* n groups of one (block, panel) into two accumulator chains *a, *b (named variables at the call, so
   they stay in registers: a chain's vpdpbusd waits for its previous one) */
static inline void rs_panel_groups(__m512i *a, __m512i *b, __m512i panel, const uint8_t *up, const int8_t *wg,
                                   const uint8_t *ig, int n) {
    int g = 0;
    for (; g + 2 <= n; g += 2) {
        *a = _mm512_dpbusd_epi32(*a, rs_panel_codes(panel, up, ig + 64 * (size_t)g), _mm512_loadu_si512((const void *)(wg + 64 * (size_t)g)));
        *b = _mm512_dpbusd_epi32(*b, rs_panel_codes(panel, up, ig + 64 * (size_t)(g + 1)),
                                 _mm512_loadu_si512((const void *)(wg + 64 * (size_t)(g + 1))));
    }
    if (g < n) *a = _mm512_dpbusd_epi32(*a, rs_panel_codes(panel, up, ig + 64 * (size_t)g), _mm512_loadu_si512((const void *)(wg + 64 * (size_t)g)));
}
#endif

/* y[0:16] = the 16 rows of one row block: w, idx its groups' codes and offsets (from its first group),
   ptr its NP + 1 group pointers (absolute: group ptr[p] is at w + 64 (ptr[p] - ptr[0])), corr its 16
   VNNI corrections; x the cols_p int8 codes, u = x ^ 0x80 */
static void rs_panels_block(const int8_t *w, const uint8_t *idx, const int32_t *ptr, const int32_t *corr,
                            int NP, int cols_p, const int8_t *x, const uint8_t *u, int32_t *y) {
    int p;
#if RS_SIMD == 3
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0; /* even panels: a0, a1; odd: a2, a3 */
    (void)x;
    for (p = 0; p < NP; p++) {
        const int n = ptr[p + 1] - ptr[p];
        const int width = cols_p - p * RS_PANEL_COLS; /* codes in this panel (64 but in the last one) */
        const uint8_t *up = u + (size_t)p * RS_PANEL_COLS;
        const int8_t *wg = w + (size_t)(ptr[p] - ptr[0]) * 64;
        const uint8_t *ig = idx + (size_t)(ptr[p] - ptr[0]) * 64;
        __m512i panel;
        if (!n) continue;
        panel = width >= RS_PANEL_COLS ? _mm512_loadu_si512((const void *)up)
                                       : _mm512_maskz_loadu_epi8((((__mmask64)1 << width) - 1), (const void *)up);
        if (p & 1) rs_panel_groups(&a2, &a3, panel, up, wg, ig, n);
        else rs_panel_groups(&a0, &a1, panel, up, wg, ig, n);
    }
    _mm512_storeu_si512((void *)y, _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                                    _mm512_loadu_si512((const void *)corr)));
#elif RS_SIMD == 2
    __m256i a[2]; /* rows 0-7, 8-15 */
    const __m256i ones = _mm256_set1_epi16(1);
    (void)u;
    (void)corr;
    a[0] = a[1] = _mm256_setzero_si256();
    for (p = 0; p < NP; p++) {
        const int n = ptr[p + 1] - ptr[p];
        const int width = cols_p - p * RS_PANEL_COLS;
        const int8_t *wg = w + (size_t)(ptr[p] - ptr[0]) * 64;
        const uint8_t *ig = idx + (size_t)(ptr[p] - ptr[0]) * 64;
        RS_ALIGN64 int8_t xp[RS_PANEL_COLS]; /* the panel's codes, zero past the matrix */
        __m256i q[4];
        int g, h;
        if (!n) continue;
        memcpy(xp, x + (size_t)p * RS_PANEL_COLS, (size_t)(width < RS_PANEL_COLS ? width : RS_PANEL_COLS));
        if (width < RS_PANEL_COLS) memset(xp + width, 0, (size_t)(RS_PANEL_COLS - width));
        for (h = 0; h < 4; h++) q[h] = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(xp + 16 * h)));
        for (g = 0; g < n; g++)
            for (h = 0; h < 2; h++) { /* rows 8 h .. 8 h + 7: 32 offsets, byte k of 16-byte chunk k >> 4 */
                const __m256i ix = _mm256_loadu_si256((const __m256i *)(ig + 64 * (size_t)g + 32 * h));
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(wg + 64 * (size_t)g + 32 * h));
                const __m256i b4 = _mm256_slli_epi16(ix, 3), b5 = _mm256_slli_epi16(ix, 2); /* bits 4, 5 to bit 7 */
                const __m256i c01 = _mm256_blendv_epi8(_mm256_shuffle_epi8(q[0], ix), _mm256_shuffle_epi8(q[1], ix), b4);
                const __m256i c23 = _mm256_blendv_epi8(_mm256_shuffle_epi8(q[2], ix), _mm256_shuffle_epi8(q[3], ix), b4);
                const __m256i xg = _mm256_blendv_epi8(c01, c23, b5);
                /* as tile_avx2: |x| * |w| <= 127 * 127, the int16 pair sums never saturate */
                a[h] = _mm256_add_epi32(a[h], _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(xg, xg),
                                                                                     _mm256_sign_epi8(wv, xg)), ones));
            }
    }
    _mm256_storeu_si256((__m256i *)y, a[0]);
    _mm256_storeu_si256((__m256i *)(y + 8), a[1]);
#elif RS_SIMD == 1 && defined(__aarch64__)
    int32x4_t a[4]; /* rows 4 r .. 4 r + 3 */
    int r;
    (void)u;
    (void)corr;
    for (r = 0; r < 4; r++) a[r] = vdupq_n_s32(0);
    for (p = 0; p < NP; p++) {
        const int n = ptr[p + 1] - ptr[p];
        const int width = cols_p - p * RS_PANEL_COLS;
        const int8_t *wg = w + (size_t)(ptr[p] - ptr[0]) * 64;
        const uint8_t *ig = idx + (size_t)(ptr[p] - ptr[0]) * 64;
        int8_t xp[RS_PANEL_COLS]; /* the panel's codes, zero past the matrix */
        int8x16x4_t t;
        int g;
        if (!n) continue;
        memcpy(xp, x + (size_t)p * RS_PANEL_COLS, (size_t)(width < RS_PANEL_COLS ? width : RS_PANEL_COLS));
        if (width < RS_PANEL_COLS) memset(xp + width, 0, (size_t)(RS_PANEL_COLS - width));
        t.val[0] = vld1q_s8(xp); t.val[1] = vld1q_s8(xp + 16); t.val[2] = vld1q_s8(xp + 32); t.val[3] = vld1q_s8(xp + 48);
        for (g = 0; g < n; g++)
            for (r = 0; r < 4; r++) { /* 16 codes of rows 4 r .. 4 r + 3, gathered by one 64-byte table lookup */
                const int8x16_t wv = vld1q_s8(wg + 64 * (size_t)g + 16 * r);
                const int8x16_t xv = vqtbl4q_s8(t, vld1q_u8(ig + 64 * (size_t)g + 16 * r));
                a[r] = vpadalq_s16(a[r], vpaddq_s16(vmull_s8(vget_low_s8(wv), vget_low_s8(xv)),
                                                    vmull_s8(vget_high_s8(wv), vget_high_s8(xv))));
            }
    }
    for (r = 0; r < 4; r++) vst1q_s32(y + 4 * r, a[r]);
#else
    int32_t a[RB];
    int r;
    (void)u;
    (void)corr;
    (void)cols_p;
    for (r = 0; r < RB; r++) a[r] = 0;
    for (p = 0; p < NP; p++) {
        const int8_t *xp = x + (size_t)p * RS_PANEL_COLS;
        const int8_t *wg = w + (size_t)(ptr[p] - ptr[0]) * 64;
        const uint8_t *ig = idx + (size_t)(ptr[p] - ptr[0]) * 64;
        const int n = ptr[p + 1] - ptr[p];
        int g;
        for (g = 0; g < n; g++, wg += 64, ig += 64)
            for (r = 0; r < RB; r++) {
                const int8_t *q = wg + KB * r;
                const uint8_t *o = ig + KB * r;
                a[r] += (int32_t)q[0] * xp[o[0]] + (int32_t)q[1] * xp[o[1]]
                      + (int32_t)q[2] * xp[o[2]] + (int32_t)q[3] * xp[o[3]];
            }
    }
    for (r = 0; r < RB; r++) y[r] = a[r];
#endif
}

#endif /* RNNSLIM_PANELS_H */
