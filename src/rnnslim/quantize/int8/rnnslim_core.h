/*
 * rnnslim_core.h: the fused integer step of rnnslim's int8 models (C99, no allocation,
 * no libm), shared word for word by the host kernel (kernel.c, loaded by IntegerRunner)
 * and by every exported C model (rnnslim export --format c), so what runs on a device is
 * the code that was measured. Every function is static: several models may live in one
 * program, each translation unit with its own copy.
 *
 * Model: embedding (token ids) or float features (identity / int8 input projection, optionally
 * over windows of frames and followed by an activation table: rs_input) -> LSTM / GRU /
 * tanh-RNN layers -> decoder, batch 1. Two entry points: one streaming step (rs_core_step*,
 * unidirectional layers, one frame per step) and a whole sequence from the zero state
 * (rs_core_run, also bidirectional layers and windowed inputs: see its comment at the end of
 * this file).
 * The arithmetic is exactly the one of integer_cells.py / fixedpoint.py (read their
 * docstrings): int8 x int8 dot products accumulated in int32, per-row requantization
 * (acc * M + 2^(n-1)) >> n in int64, Q.12 gate pre-activations, interpolated int16
 * sigmoid/tanh tables, int16 cell state. Results are bit-identical to the torch reference;
 * the SIMD dot products below only change the order of exact integer additions.
 *
 * Dot-product kernels (chosen at compile time, all exact):
 *   AVX512-VNNI  vpdpbusd on (x + 128) as uint8, minus 128 * row sum of the weights
 *   AVX2         vpmaddubsw(|x|, sign(w, x)) + vpmaddwd: |x| * |w| <= 127 * 127, so the
 *                int16 pair sums (<= 32258) never saturate
 *   NEON         vmull_s8 + vpadalq_s16 (AArch64 / ARMv7 NEON): |x| * |w| <= 127 * 127,
 *                two products per int16 lane (<= 32258) never saturate
 *   portable     plain C loops (-DRS_PORTABLE forces this one; what a Cortex-M runs)
 * Matrices are packed (packed.py) into tiles of 16 rows x 4 columns so the output rows lie
 * in the vector lanes and no horizontal sums are needed. A tile-sparse matrix keeps only
 * its non-zero tiles (block pruning with 16 x 4 blocks, or any mask that empties whole
 * tiles) with a CSR index over tiles: the step then reads and multiplies only those. A 2:4
 * matrix (N:M pruning, at most 2 non-zeros per row in each group of 4 columns) keeps 2 codes
 * per group with 2-bit column offsets and multiplies only those (matvec_nm24, plain C on
 * every build for now). A strips matrix (strips.py: the non-zero 16 x 1 column strips of each row
 * block, per 64-column panel, grouped by 4 into the same 16 x 4 tiles) gathers the input codes of
 * its kept columns (one vpermb per panel on AVX512-VBMI, bytes by index elsewhere) and multiplies
 * only its tiles with the tile kernels below (matvec_strips).
 *
 * Requires arithmetic right shift of negative integers (every mainstream compiler).
 */
#ifndef RNNSLIM_CORE_H
#define RNNSLIM_CORE_H
#include <stdint.h>
#include <string.h>

#if !defined(RS_PORTABLE) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define RS_SIMD 3
#elif !defined(RS_PORTABLE) && defined(__AVX2__)
#define RS_SIMD 2
#elif !defined(RS_PORTABLE) && (defined(__ARM_NEON) || defined(__ARM_NEON__))
#define RS_SIMD 1
#else
#define RS_SIMD 0
#endif
/* the VNNI row corrections (rs_mat.corr) are read by the AVX-512 path only: an exported model defines
   them on such a build alone (c_source.py), so other targets keep none in flash */
#if RS_SIMD == 3
#define RS_CORR(a) (a)
#else
#define RS_CORR(a) NULL
#endif
#if RS_SIMD >= 2
#include <immintrin.h>
#elif RS_SIMD == 1
#include <arm_neon.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RS_ALIGN64 __attribute__((aligned(64)))
/* The entry points (rs_core_forward*, rs_core_step*, rs_core_run*, rs_core_delta_bytes) are
   static like everything here, and each translation unit calls only those its model needs
   (a generated model: rs_core_forward or its delta / features twin, rs_core_run): marked
   maybe-unused so -Wall -Wextra -Werror builds stay clean; unused ones still emit no code. */
#define RS_MAYBE_UNUSED __attribute__((unused))
#else
#define RS_ALIGN64
#define RS_MAYBE_UNUSED
#endif

#define RB 16 /* rows per packed tile */
#define KB 4  /* columns per packed tile */
#define PRE_SAT (1 << 24)
#define LUT_SIZE 1025 /* entries of f(-16 + k / 32), k = 0 .. 1024 (fixedpoint.py) */
#define LUT_HALF 513  /* entries an export stores: k = 0 .. 512; the upper half mirrors them (lut below) */
/* An exported model's tables are their lower halves (flash); the host kernel (kernel.c: IntegerRunner) defines
   RS_FULL_TABLES and passes whole tables, so its hot path does no mirroring. Both give the same values. */
#define LUT_SIG_MIRROR 32768 /* sigmoid: T[k] = min(32767, 32768 - T[1024 - k]) for k > 512 */
#define LUT_TANH_MIRROR 0    /* tanh:    T[k] = min(32767, -T[1024 - k]) */
#define LUT_LO (-65536)
#define LUT_HI 65535
#define Q8_MAX 127

/* gcc (11 and later) reports -Warray-bounds / -Wstringop-overflow on code a model never runs:
   it propagates the generated model's constant buffer sizes into every layer function and
   then flags, e.g., the AVX-512 loop of an LSTM layer (which runs only when hidden >= 16) in
   a model whose hidden is 8, or the vectorized tail of a byte loop past a buffer shorter than
   one vector. The sizes come from packed.py and every access stays inside them (tests/export
   run the exports under AddressSanitizer); Linux turns both warnings off for gcc >= 11 for
   the same reason. Only these two, only for this file, only for gcc. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#if __GNUC__ >= 7 /* older gcc has no such option (and would warn about the pragma) */
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#endif

enum { CELL_LSTM = 0, CELL_GRU = 1, CELL_RNN = 2 };

/* A packed int8 matrix. Dense: w is [rows_p / RB][cols_p / KB][RB][KB]. Tile-sparse
   (tile_ptr != NULL): the tiles of row block b are w[tile_ptr[b] .. tile_ptr[b + 1]) (64
   bytes each, 64-byte aligned), tile t covering columns 4 * tile_col[t] .. + 3. */
typedef struct {
    int rows, cols, rows_p, cols_p;
    const int8_t *w;
    const int32_t *corr;     /* [rows_p] 128 * sum_k w[r][k], for the unsigned-offset VNNI path (NULL elsewhere) */
    const int32_t *tile_ptr; /* [rows_p / RB + 1] or NULL (dense) */
    const uint16_t *tile_col;
    /* 2:4 (nm_idx != NULL): each row keeps 2 codes per group of KB = 4 columns (N:M pruning);
       w is [rows_p][cols_p / 2] (the 2 kept codes of each group, in column order, zero where a
       group keeps fewer), nm_idx is [rows_p][rs_nm24_idx_cols] bytes: the 2-bit column offsets
       (i0 | i1 << 2) of group g in the nibble g & 1 of byte g >> 1 (packed.py pack_nm24). */
    const uint8_t *nm_idx;
    /* strips (strip_ptr != NULL; strips.py): the kept 16 x 1 column strips of each row block, per
       64-column panel, grouped by 4 into 16 x 4 tiles: the tiles of row block b in panel p are
       w[strip_ptr[b * NP + p] .. strip_ptr[b * NP + p + 1]) (NP = ceil(cols_p / 64), 64 bytes each,
       64-byte aligned), tile t's 4 columns are 64 p + strip_idx[4 t .. 4 t + 3] */
    const int32_t *strip_ptr;
    const uint8_t *strip_idx;
    /* panels (panel_ptr != NULL; panels.py, rnnslim_panels.h): every row of block b stores the same number
       of codes of 64-column panel p, in groups of 4 per row: groups panel_ptr[b * NP + p] .. panel_ptr[b * NP
       + p + 1]; group g is 64 codes w[64 g ..] and their 64 column offsets in the panel panel_idx[64 g ..]
       (lane r, row 16 b + r, holds 4 of each) */
    const int32_t *panel_ptr;
    const uint8_t *panel_idx;
} rs_mat;

/* index bytes per row of a 2:4 matrix: one nibble per group of 4 columns */
static inline int rs_nm24_idx_cols(const rs_mat *m) { return (m->cols_p / KB + 1) / 2; }

typedef struct rs_layer {
    int input, hidden, rows; /* rows = G * hidden, G = 4 (LSTM), 3 (GRU), 1 (RNN) */
    rs_mat wx, wh;
    const int32_t *mult_x, *mult_h, *bias; /* [rows], [rows], [4 * hidden] (RNN: [hidden]) */
    const int8_t *shift_x, *shift_h;       /* [rows] */
    int32_t h_mult;
    int h_shift, cf;
    const int16_t *sig, *tanh_; /* [LUT_HALF]: each table's lower half (lut mirrors it); RS_FULL_TABLES: [LUT_SIZE] */
    const int32_t *tx_table;    /* folded embedding: [V][rows] input terms of layer 0, or NULL */
    /* Bidirectional layer: the backward direction (same input / hidden / rows, h_mult / h_shift /
       cf / tables; its own matrices, per-row constants, bias and tx_table), else NULL. Only the
       whole-sequence run (rs_core_run) reads it: a streaming step cannot see the future. */
    const struct rs_layer *rev;
    /* Delta step (rs_core_step_delta, see "delta networks" below): column-blocked copies of W_ih /
       W_hh ([rows_c / RS_DROWS][cols][RS_DROWS] int8, rows_c = rows rounded up to RS_DROWS: the
       64-row slices of every column, chunk by chunk), NULL where that matrix runs dense (W_ih of layer 0 of a token model); delta_thr: |x - last| < delta_thr skips a column. */
    const int8_t *wx_cols, *wh_cols;
    int32_t delta_thr;
} rs_layer;

/* The model: constants (const pointers) and scratch buffers (int8 codes: xbuf, hbuf, ybuf of
   max_cols, ubuf of 2 * max_cols; int32 accumulators: ax, ah of max_chunk (one chunk of a layer's
   gate rows: rs_chunk_rows), acc of max_rows (the decoder's, the input projection's rows)). A step
   writes only the scratch and the caller's state. */
enum { INPUT_EMBEDDING = 0, INPUT_IDENTITY = 1, INPUT_LINEAR = 2 };

/* Feature input (InputKind identity / linear): F float features are rounded once to int8
   codes, codes = sat(round_half_even(x / in_scale), -127, 127); "linear" then applies the
   integer input projection (E x F, int8 output codes requantized per row) and, with act, an
   elementwise activation as a table on those codes (out = act[code + 128]).
   A windowed projection (a Conv1d front end, window > 1 or padding > 0) reads F = window *
   frame codes: the frames t - padding .. t - padding + window - 1 of the input (frame features
   each, frame-major), zero codes outside the sequence; only rs_core_run runs it (T + 2 padding
   - window + 1 output steps): a streaming step cannot see the future frames. */
typedef struct {
    int kind, F;
    float in_scale;
    rs_mat w;                 /* linear only: (E, F) */
    const int32_t *bias, *mult; /* [E] */
    const int8_t *shift;      /* [E] */
    const int8_t *act;        /* [256] activation table on the projection's codes, or NULL */
    int window, padding, frame; /* window 1, padding 0, frame F: one frame per step */
} rs_input;

typedef struct {
    int cell, L, V, E, O, state_len, max_cols, max_rows, max_chunk;
    const int8_t *emb; /* [V][E]; NULL when layer 0 has a folded table or the table is tied */
    int emb_tied;      /* tied embedding: the table is dec's (dense, V x E), rows gathered by rs_token_codes */
    rs_input in;       /* in.kind == INPUT_EMBEDDING: token ids through emb */
    const rs_layer *layers;
    rs_mat dec;
    const int32_t *dec_b;
    const float *dec_scale;
    int8_t *xbuf, *hbuf, *ybuf; /* padded int8 codes */
    uint8_t *ubuf;              /* [2 * max_cols]: x ^ 0x80, then h ^ 0x80 (VNNI) */
    int32_t *ax, *ah, *acc;
} rs_model;

/* ---- fixed point (fixedpoint.py) ------------------------------------------------------ */
static inline int64_t requant(int64_t a, int32_t m, int n) {
    return (a * (int64_t)m + ((int64_t)1 << (n - 1))) >> n;
}
static inline int32_t clamp32(int64_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : (int32_t)v); }
static inline int32_t term(int32_t acc, int32_t m, int n) { return clamp32(requant(acc, m, n), -PRE_SAT, PRE_SAT); }
static inline int32_t rshr(int32_t v, int n) { return n == 0 ? v : (v + (1 << (n - 1))) >> n; }
static inline int64_t rshr64(int64_t v, int n) { return n == 0 ? v : (v + ((int64_t)1 << (n - 1))) >> n; }
/* the upper half of a table from its mirror entry: min(32767, mirror - T[1024 - k]) (exact for both
   tables: fixedpoint.half_table checks it) */
static inline int32_t lut_mirrored(int32_t mirror, int32_t v) { return mirror - v > 32767 ? 32767 : mirror - v; }
/* interpolated lookup of the full table T (LUT_SIZE entries) from its lower half t (LUT_HALF) */
static inline int32_t lut(const int16_t *t, int32_t mirror, int32_t p) {
    int32_t u, k, fr, lo, hi;
    if (p < LUT_LO) p = LUT_LO;
    if (p > LUT_HI) p = LUT_HI;
    u = p - LUT_LO;
    k = u >> 7;
    fr = u & 127;
#ifdef RS_FULL_TABLES
    (void)mirror;
    lo = t[k];
    hi = t[k + 1];
#else
    if (k < LUT_HALF - 1) {
        lo = t[k];
        hi = t[k + 1];
    } else { /* T[k] and T[k + 1] mirror t[1024 - k] and t[1023 - k] */
        lo = lut_mirrored(mirror, t[1024 - k]);
        hi = lut_mirrored(mirror, t[1023 - k]);
    }
#endif
    return lo + (((hi - lo) * fr + 64) >> 7);
}
#define RS_SIG(t, p) lut((t), LUT_SIG_MIRROR, (p))
#define RS_TANH(t, p) lut((t), LUT_TANH_MIRROR, (p))


/* ---- packed int8 matrix x vector ------------------------------------------------------ */

#if RS_SIMD == 1
/* [a0+a1, a2+a3, .., b6+b7] (vpaddq_s16 exists on AArch64 only) */
static inline int16x8_t rs_vpaddq_s16(int16x8_t a, int16x8_t b) {
#if defined(__aarch64__)
    return vpaddq_s16(a, b);
#else
    return vcombine_s16(vpadd_s16(vget_low_s16(a), vget_high_s16(a)), vpadd_s16(vget_low_s16(b), vget_high_s16(b)));
#endif
}
#endif

static inline int32_t load4(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* One 16 x 4 tile (64 bytes at q: rows in the lanes, 4 columns each) times the 4 input codes
   x4 of its column group, added to the 16 row accumulators. Every path is exact; the dense
   and the tile-sparse products below differ only in which tiles they visit. */
#if RS_SIMD == 3
/* u4: the codes as unsigned (x ^ 0x80); the caller subtracts 128 * row sum (m->corr) */
static inline __m512i tile_vnni(__m512i a, const int8_t *q, int32_t u4) {
    return _mm512_dpbusd_epi32(a, _mm512_set1_epi32(u4), _mm512_load_si512((const void *)q));
}
#elif RS_SIMD == 2
/* a[0]: rows 0-7, a[1]: rows 8-15 */
static inline void tile_avx2(__m256i *a, const int8_t *q, int32_t x4) {
    const __m256i ones = _mm256_set1_epi16(1), xb = _mm256_set1_epi32(x4), ax = _mm256_sign_epi8(xb, xb);
    a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)q), xb)), ones));
    a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(q + 32)), xb)), ones));
}
#elif RS_SIMD == 1
/* a[r]: rows 4r .. 4r+3; x4 repeated, one 16-byte quarter of the tile is 4 rows x 4 columns */
static inline void tile_neon(int32x4_t *a, const int8_t *q, int32_t x4) {
    const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(x4));
    int r;
    for (r = 0; r < 4; r++) {
        const int8x16_t wv = vld1q_s8(q + 16 * r);
        a[r] = vpadalq_s16(a[r], rs_vpaddq_s16(vmull_s8(vget_low_s8(wv), vget_low_s8(xv)),
                                               vmull_s8(vget_high_s8(wv), vget_high_s8(xv))));
    }
}
#else
static inline void tile_c(int32_t *a, const int8_t *q, const int8_t *xs) {
    int r, k;
    for (r = 0; r < RB; r++)
        for (k = 0; k < KB; k++) a[r] += (int32_t)q[r * KB + k] * (int32_t)xs[k];
}
#endif

/* Every product below computes B->n row blocks of W into y[0 : B->n * RB) (block i at y + i * RB):
   block i is b0 + (i >> lp) * step + (i & (2^lp - 1)), runs of 2^lp consecutive blocks `step` apart:
   the whole matrix (b0 0, lp 0, step 1, n rows_p / RB) or the gate rows of one chunk of units
   (chunk / RB = 2^lp blocks of each gate, gates hidden / RB blocks apart: rs_chunk_blocks). */
typedef struct { int b0, lp, step, n; } rs_blocks;
#define RS_BLK(i) ((size_t)(B->b0 + ((i) >> B->lp) * B->step + ((i) & ((1 << B->lp) - 1))))

/* dense packed W; x holds cols_p int8 codes (zero padded), u = x ^ 0x80 */
static void matvec_dense(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y, const rs_blocks *B) {
    const int nb = B->n;
    const int KG = m->cols_p / KB;
    const size_t bs = (size_t)KG * RB * KB; /* bytes per row block */
    int i = 0, kg;
#if RS_SIMD == 3
    (void)x;
    for (; i + 4 <= nb; i += 4) { /* four row blocks share each broadcast of the codes */
        const int8_t *p0 = m->w + RS_BLK(i) * bs, *p1 = m->w + RS_BLK(i + 1) * bs;
        const int8_t *p2 = m->w + RS_BLK(i + 2) * bs, *p3 = m->w + RS_BLK(i + 3) * bs;
        __m512i a[4];
        int j;
        for (j = 0; j < 4; j++) a[j] = _mm512_setzero_si512();
        for (kg = 0; kg < KG; kg++) {
            const int32_t u4 = load4(u + 4 * kg);
            const size_t o = (size_t)kg * 64;
            a[0] = tile_vnni(a[0], p0 + o, u4);
            a[1] = tile_vnni(a[1], p1 + o, u4);
            a[2] = tile_vnni(a[2], p2 + o, u4);
            a[3] = tile_vnni(a[3], p3 + o, u4);
        }
        for (j = 0; j < 4; j++)
            _mm512_storeu_si512((void *)(y + (i + j) * RB),
                                _mm512_sub_epi32(a[j], _mm512_loadu_si512((const void *)(m->corr + RS_BLK(i + j) * RB))));
    }
    for (; i + 2 <= nb; i += 2) { /* two row blocks, two chains each: the dot-product latency overlaps */
        const int8_t *p0 = m->w + RS_BLK(i) * bs, *p1 = m->w + RS_BLK(i + 1) * bs;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, c0 = a0, c1 = a0;
        for (kg = 0; kg + 2 <= KG; kg += 2) {
            const int32_t u4 = load4(u + 4 * kg), v4 = load4(u + 4 * kg + 4);
            const size_t o = (size_t)kg * 64;
            a0 = tile_vnni(a0, p0 + o, u4);
            c0 = tile_vnni(c0, p1 + o, u4);
            a1 = tile_vnni(a1, p0 + o + 64, v4);
            c1 = tile_vnni(c1, p1 + o + 64, v4);
        }
        if (kg < KG) {
            a0 = tile_vnni(a0, p0 + (size_t)kg * 64, load4(u + 4 * kg));
            c0 = tile_vnni(c0, p1 + (size_t)kg * 64, load4(u + 4 * kg));
        }
        _mm512_storeu_si512((void *)(y + i * RB), _mm512_sub_epi32(_mm512_add_epi32(a0, a1),
                                                                   _mm512_loadu_si512((const void *)(m->corr + RS_BLK(i) * RB))));
        _mm512_storeu_si512((void *)(y + (i + 1) * RB), _mm512_sub_epi32(_mm512_add_epi32(c0, c1),
                                                                         _mm512_loadu_si512((const void *)(m->corr + RS_BLK(i + 1) * RB))));
    }
    for (; i < nb; i++) { /* two chains: the dot-product latency overlaps */
        const int8_t *p = m->w + RS_BLK(i) * bs;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        for (kg = 0; kg + 2 <= KG; kg += 2) {
            a0 = tile_vnni(a0, p + (size_t)kg * 64, load4(u + 4 * kg));
            a1 = tile_vnni(a1, p + (size_t)(kg + 1) * 64, load4(u + 4 * kg + 4));
        }
        if (kg < KG) a0 = tile_vnni(a0, p + (size_t)kg * 64, load4(u + 4 * kg));
        _mm512_storeu_si512((void *)(y + i * RB), _mm512_sub_epi32(_mm512_add_epi32(a0, a1),
                                                                   _mm512_loadu_si512((const void *)(m->corr + RS_BLK(i) * RB))));
    }
#elif RS_SIMD == 2
    (void)u;
    for (; i + 2 <= nb; i += 2) { /* two row blocks share each broadcast of the codes */
        const int8_t *p0 = m->w + RS_BLK(i) * bs, *p1 = m->w + RS_BLK(i + 1) * bs;
        __m256i a[4];
        int j;
        for (j = 0; j < 4; j++) a[j] = _mm256_setzero_si256();
        for (kg = 0; kg < KG; kg++) {
            tile_avx2(a, p0 + (size_t)kg * 64, load4(x + 4 * kg));
            tile_avx2(a + 2, p1 + (size_t)kg * 64, load4(x + 4 * kg));
        }
        for (j = 0; j < 4; j++) _mm256_storeu_si256((__m256i *)(y + i * RB + 8 * j), a[j]);
    }
    for (; i < nb; i++) {
        const int8_t *p = m->w + RS_BLK(i) * bs;
        __m256i a[2];
        a[0] = a[1] = _mm256_setzero_si256();
        for (kg = 0; kg < KG; kg++) tile_avx2(a, p + (size_t)kg * 64, load4(x + 4 * kg));
        _mm256_storeu_si256((__m256i *)(y + i * RB), a[0]);
        _mm256_storeu_si256((__m256i *)(y + i * RB + 8), a[1]);
    }
#elif RS_SIMD == 1
    (void)u;
    for (; i < nb; i++) {
        const int8_t *p = m->w + RS_BLK(i) * bs;
        int32x4_t a[4];
        int r;
        for (r = 0; r < 4; r++) a[r] = vdupq_n_s32(0);
        for (kg = 0; kg < KG; kg++) tile_neon(a, p + (size_t)kg * 64, load4(x + 4 * kg));
        for (r = 0; r < 4; r++) vst1q_s32(y + i * RB + 4 * r, a[r]);
    }
#else
    (void)u;
    for (; i < nb; i++) {
        const int8_t *p = m->w + RS_BLK(i) * bs;
        int32_t a[RB];
        int r;
        for (r = 0; r < RB; r++) a[r] = 0;
        for (kg = 0; kg < KG; kg++) tile_c(a, p + (size_t)kg * RB * KB, x + kg * KB);
        for (r = 0; r < RB; r++) y[i * RB + r] = a[r];
    }
#endif
}


/* tile-sparse W: only the stored tiles are read and multiplied */
static void matvec_sparse(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y, const rs_blocks *B) {
    const int nb = B->n;
    int i, t;
#if RS_SIMD == 3
    (void)x;
    for (i = 0; i < nb; i++) {
        const size_t b = RS_BLK(i);
        const int e = m->tile_ptr[b + 1];
        __m512i a0 = _mm512_setzero_si512(), a1 = a0; /* two chains: the dot-product latency overlaps */
        for (t = m->tile_ptr[b]; t + 2 <= e; t += 2) {
            a0 = tile_vnni(a0, m->w + (size_t)t * 64, load4(u + 4 * m->tile_col[t]));
            a1 = tile_vnni(a1, m->w + (size_t)(t + 1) * 64, load4(u + 4 * m->tile_col[t + 1]));
        }
        if (t < e) a0 = tile_vnni(a0, m->w + (size_t)t * 64, load4(u + 4 * m->tile_col[t]));
        _mm512_storeu_si512((void *)(y + i * RB),
                            _mm512_sub_epi32(_mm512_add_epi32(a0, a1), _mm512_loadu_si512((const void *)(m->corr + b * RB))));
    }
#elif RS_SIMD == 2
    (void)u;
    for (i = 0; i < nb; i++) {
        const size_t b = RS_BLK(i);
        __m256i a[2];
        a[0] = a[1] = _mm256_setzero_si256();
        for (t = m->tile_ptr[b]; t < m->tile_ptr[b + 1]; t++)
            tile_avx2(a, m->w + (size_t)t * 64, load4(x + 4 * m->tile_col[t]));
        _mm256_storeu_si256((__m256i *)(y + i * RB), a[0]);
        _mm256_storeu_si256((__m256i *)(y + i * RB + 8), a[1]);
    }
#elif RS_SIMD == 1
    (void)u;
    for (i = 0; i < nb; i++) {
        const size_t b = RS_BLK(i);
        int32x4_t a[4];
        int r;
        for (r = 0; r < 4; r++) a[r] = vdupq_n_s32(0);
        for (t = m->tile_ptr[b]; t < m->tile_ptr[b + 1]; t++)
            tile_neon(a, m->w + (size_t)t * 64, load4(x + 4 * m->tile_col[t]));
        for (r = 0; r < 4; r++) vst1q_s32(y + i * RB + 4 * r, a[r]);
    }
#else
    (void)u;
    for (i = 0; i < nb; i++) {
        const size_t b = RS_BLK(i);
        int32_t a[RB];
        int r;
        for (r = 0; r < RB; r++) a[r] = 0;
        for (t = m->tile_ptr[b]; t < m->tile_ptr[b + 1]; t++)
            tile_c(a, m->w + (size_t)t * RB * KB, x + m->tile_col[t] * KB);
        for (r = 0; r < RB; r++) y[i * RB + r] = a[r];
    }
#endif
}

/* y[0:rows_p] = W x for a 2:4 matrix (rs_mat.nm_idx): half the MACs and 5/8 of the bytes of the dense
   product, exact like it (the same int8 x int8 products in int32, only the zeros skipped). One plain C
   loop for every build (no SIMD gather yet: the dense SIMD paths may beat it on a host). */
static void matvec_nm24(const rs_mat *m, const int8_t *x, int32_t *y, const rs_blocks *B) {
    const int nb = B->n;
    const int KG = m->cols_p / KB, NI = rs_nm24_idx_cols(m);
    int i, j;
    for (i = 0; i < nb * RB; i++) {
        const size_t r = RS_BLK(i / RB) * RB + (size_t)(i % RB);
        const int8_t *v = m->w + r * (size_t)KG * 2; /* [KG][2] kept codes of row r */
        const uint8_t *ix = m->nm_idx + r * (size_t)NI;
        int32_t a = 0;
        for (j = 0; 2 * j + 1 < KG; j++) { /* two groups (8 columns) per index byte */
            const unsigned s = ix[j];
            const int8_t *xg = x + 8 * j, *vj = v + 4 * j;
            a += (int32_t)vj[0] * xg[s & 3u] + (int32_t)vj[1] * xg[(s >> 2) & 3u]
               + (int32_t)vj[2] * xg[4 + ((s >> 4) & 3u)] + (int32_t)vj[3] * xg[4 + (s >> 6)];
        }
        if (KG & 1) { /* the last, odd group: low nibble of the last byte */
            const unsigned s = ix[j];
            const int8_t *xg = x + 8 * j, *vj = v + 4 * j;
            a += (int32_t)vj[0] * xg[s & 3u] + (int32_t)vj[1] * xg[(s >> 2) & 3u];
        }
        y[i] = a;
    }
}

/* ---- panels (panels.py, rnnslim_panels.h) ---------------------------------------------- */
#include "rnnslim_panels.h"

/* the row blocks B of a panels matrix (rs_mat.panel_ptr): each block's kept codes only, exact */
static void matvec_panels(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y, const rs_blocks *B) {
    const int NP = (m->cols_p + RS_PANEL_COLS - 1) / RS_PANEL_COLS;
    int i;
    for (i = 0; i < B->n; i++) {
        const size_t b = RS_BLK(i);
        const int32_t *pb = m->panel_ptr + b * (size_t)NP;
        const int32_t *corr = m->corr ? m->corr + b * RB : NULL; /* NULL off the AVX-512 path (RS_CORR) */
        rs_panels_block(m->w + 64 * (size_t)pb[0], m->panel_idx + 64 * (size_t)pb[0], pb, corr, NP, m->cols_p, x, u,
                        y + (size_t)i * RB);
    }
}

/* ---- strips (strips.py) ---------------------------------------------------------------- */
#define RS_PANEL 64     /* columns per panel: the input codes one byte permute gathers from */
#define RS_GATHER 1024  /* gathered codes per batch of tiles (a stack buffer of the SIMD paths) */

/* the 4 input codes of a strips tile: panel codes xp at the tile's 4 column offsets ix, as one int32
   (the byte order of memory, as load4 of a dense tile's codes) */
static inline int32_t strip_x4(const int8_t *xp, const uint8_t *ix) {
    int8_t c[4];
    c[0] = xp[ix[0]]; c[1] = xp[ix[1]]; c[2] = xp[ix[2]]; c[3] = xp[ix[3]];
    return load4(c);
}

#if RS_SIMD == 3
/* n tiles at w times the gathered unsigned codes g (4 per tile), on 4 accumulator chains */
static inline void strips_vnni_tiles(__m512i *a, const int8_t *w, const uint8_t *g, int n) {
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        a[0] = tile_vnni(a[0], w + (size_t)t * 64, load4(g + 4 * t));
        a[1] = tile_vnni(a[1], w + (size_t)(t + 1) * 64, load4(g + 4 * t + 4));
        a[2] = tile_vnni(a[2], w + (size_t)(t + 2) * 64, load4(g + 4 * t + 8));
        a[3] = tile_vnni(a[3], w + (size_t)(t + 3) * 64, load4(g + 4 * t + 12));
    }
    for (; t < n; t++) a[0] = tile_vnni(a[0], w + (size_t)t * 64, load4(g + 4 * t));
}
static inline __mmask64 rs_mask64(int n) { return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1); }
#endif

/* y[0:rows_p] = W x for a strips matrix: per row block, the codes of its kept columns are gathered
   panel by panel, then its tiles run as dense tiles would (exact: the same products, zeros skipped) */
static void matvec_strips(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y, const rs_blocks *B) {
    const int nb = B->n;
    const int NP = (m->cols_p + RS_PANEL - 1) / RS_PANEL;
    int bi, p;
#if RS_SIMD == 3
    RS_ALIGN64 uint8_t g[RS_GATHER + RS_PANEL]; /* gathered unsigned codes (+ slack: a gather stores 64 bytes) */
    (void)x;
    for (bi = 0; bi < nb; bi++) {
        const size_t b = RS_BLK(bi);
        const int32_t *ptr = m->strip_ptr + b * (size_t)NP;
        __m512i a[4];
        int t0 = ptr[0], n = 0, i; /* g holds n codes, of the tiles from t0 */
        for (i = 0; i < 4; i++) a[i] = _mm512_setzero_si512();
        for (p = 0; p < NP; p++) {
            const int k = 4 * (ptr[p + 1] - ptr[p]); /* codes of (b, p), <= 64 */
            const uint8_t *ix = m->strip_idx + 4 * (size_t)ptr[p], *up = u + (size_t)p * RS_PANEL;
            if (!k) continue;
            if (n + k > RS_GATHER) {
                strips_vnni_tiles(a, m->w + (size_t)t0 * 64, g, n / 4);
                t0 += n / 4;
                n = 0;
            }
#if defined(__AVX512VBMI__)
            { /* one byte permute of the panel's (up to) 64 codes by the stored offsets */
                const int w = m->cols_p - p * RS_PANEL; /* codes in this panel (64 but in the last one) */
                const __m512i panel = w >= RS_PANEL ? _mm512_loadu_si512((const void *)up)
                                                    : _mm512_maskz_loadu_epi8(rs_mask64(w), (const void *)up);
                const __m512i idx = _mm512_maskz_loadu_epi8(rs_mask64(k), (const void *)ix);
                _mm512_storeu_si512((void *)(g + n), _mm512_permutexvar_epi8(idx, panel));
            }
#else
            for (i = 0; i < k; i++) g[n + i] = up[ix[i]];
#endif
            n += k;
        }
        strips_vnni_tiles(a, m->w + (size_t)t0 * 64, g, n / 4);
        _mm512_storeu_si512((void *)(y + bi * RB),
                            _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(a[0], a[1]), _mm512_add_epi32(a[2], a[3])),
                                             _mm512_loadu_si512((const void *)(m->corr + b * RB))));
    }
#else
    (void)u;
    for (bi = 0; bi < nb; bi++) {
        const size_t b = RS_BLK(bi);
        const int32_t *ptr = m->strip_ptr + b * (size_t)NP;
#if RS_SIMD == 2
        __m256i a[2];
        a[0] = a[1] = _mm256_setzero_si256();
#elif RS_SIMD == 1
        int32x4_t a[4];
        int r;
        for (r = 0; r < 4; r++) a[r] = vdupq_n_s32(0);
#else
        int32_t a[RB];
        int r;
        for (r = 0; r < RB; r++) a[r] = 0;
#endif
        for (p = 0; p < NP; p++) {
            const int8_t *xp = x + (size_t)p * RS_PANEL;
            int t;
            for (t = ptr[p]; t < ptr[p + 1]; t++) {
                const uint8_t *ix = m->strip_idx + 4 * (size_t)t;
#if RS_SIMD == 2
                tile_avx2(a, m->w + (size_t)t * 64, strip_x4(xp, ix));
#elif RS_SIMD == 1
                tile_neon(a, m->w + (size_t)t * 64, strip_x4(xp, ix));
#else
                const int8_t xs[KB] = {xp[ix[0]], xp[ix[1]], xp[ix[2]], xp[ix[3]]};
                tile_c(a, m->w + (size_t)t * RB * KB, xs);
#endif
            }
        }
#if RS_SIMD == 2
        _mm256_storeu_si256((__m256i *)(y + bi * RB), a[0]);
        _mm256_storeu_si256((__m256i *)(y + bi * RB + 8), a[1]);
#elif RS_SIMD == 1
        for (r = 0; r < 4; r++) vst1q_s32(y + bi * RB + 4 * r, a[r]);
#else
        for (r = 0; r < RB; r++) y[bi * RB + r] = a[r];
#endif
    }
#endif
}

/* the row blocks B of W x into y[0 : B->n * RB) */
static void matvec_blocks(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y, const rs_blocks *B) {
    if (m->panel_ptr) matvec_panels(m, x, u, y, B);
    else if (m->strip_ptr) matvec_strips(m, x, u, y, B);
    else if (m->nm_idx) matvec_nm24(m, x, y, B);
    else if (m->tile_ptr) matvec_sparse(m, x, u, y, B);
    else matvec_dense(m, x, u, y, B);
}

/* y[0:rows_p] = W x */
static void matvec(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y) {
    const rs_blocks all = {0, 0, 1, m->rows_p / RB};
    matvec_blocks(m, x, u, y, &all);
}

/* copy n int8 codes into a padded buffer (zeros up to cols_p) and its unsigned twin */
static void load_codes(int8_t *dst, uint8_t *u, const int8_t *src, int n, int cols_p) {
    int k;
    if (dst != src) memcpy(dst, src, (size_t)n);
    memset(dst + n, 0, (size_t)(cols_p - n));
    for (k = 0; k < cols_p; k++) u[k] = (uint8_t)dst[k] ^ 0x80;
}

/* ---- one step ------------------------------------------------------------------------- */
static inline int32_t h8_of(int32_t h16, const rs_layer *ly) {
    return clamp32(requant(h16, ly->h_mult, ly->h_shift), -Q8_MAX, Q8_MAX);
}

#if RS_SIMD == 3
/* AVX-512 versions of the scalar helpers above: the same integer operations on 16 lanes.
   64-bit products use vpmuldq on the even and the odd 32-bit lanes separately. */
#define V512(x) _mm512_set1_epi32(x)
static inline __m512i v_clamp(__m512i v, int32_t lo, int32_t hi) {
    return _mm512_min_epi32(_mm512_max_epi32(v, V512(lo)), V512(hi));
}
/* sat((a * m + 2^(n-1)) >> n, lo, hi) per lane, products and shifts in 64 bits */
static inline __m512i v_requant(__m512i a, __m512i m, __m512i n, int64_t lo, int64_t hi) {
    const __m512i one = _mm512_set1_epi64(1), low = _mm512_set1_epi64(0xFFFFFFFF);
    const __m512i vlo = _mm512_set1_epi64(lo), vhi = _mm512_set1_epi64(hi);
    const __m512i ne = _mm512_and_si512(n, low), no = _mm512_srli_epi64(n, 32);
    __m512i pe = _mm512_mul_epi32(a, m);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(m, 32));
    pe = _mm512_srav_epi64(_mm512_add_epi64(pe, _mm512_sllv_epi64(one, _mm512_sub_epi64(ne, one))), ne);
    po = _mm512_srav_epi64(_mm512_add_epi64(po, _mm512_sllv_epi64(one, _mm512_sub_epi64(no, one))), no);
    pe = _mm512_min_epi64(_mm512_max_epi64(pe, vlo), vhi);
    po = _mm512_min_epi64(_mm512_max_epi64(po, vlo), vhi);
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}
/* rshr64(a * b, 15) per lane (the GRU reset product; the result fits in 32 bits) */
static inline __m512i v_mul_rshr15(__m512i a, __m512i b) {
    const __m512i half = _mm512_set1_epi64(1 << 14);
    __m512i pe = _mm512_mul_epi32(a, b);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
    pe = _mm512_srai_epi64(_mm512_add_epi64(pe, half), 15);
    po = _mm512_srai_epi64(_mm512_add_epi64(po, half), 15);
    return _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}
static inline __m512i v_rshr(__m512i v, int n) {
    if (n == 0) return v;
    return _mm512_sra_epi32(_mm512_add_epi32(v, V512(1 << (n - 1))), _mm_cvtsi32_si128(n));
}
/* one 32-bit gather at byte offset 2j fetches t[j] (low half) and t[j+1] (high half): j = k (whole tables, or
   the lower half); in the upper half of a half table j = 1023 - k, whose pair mirrored and swapped is T[k],
   T[k+1] (lut) */
static inline __m512i v_lut(const int16_t *t, int32_t mirror, __m512i p) {
    const __m512i u = _mm512_sub_epi32(v_clamp(p, LUT_LO, LUT_HI), V512(LUT_LO));
    const __m512i k = _mm512_srli_epi32(u, 7), fr = _mm512_and_si512(u, V512(127));
#ifdef RS_FULL_TABLES
    const __m512i pair = _mm512_i32gather_epi32(k, (const void *)t, 2);
    const __m512i lo = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), hi = _mm512_srai_epi32(pair, 16);
    (void)mirror;
#else
    const __mmask16 up = _mm512_cmpge_epi32_mask(k, V512(LUT_HALF - 1));
    const __m512i j = _mm512_mask_sub_epi32(k, up, V512(1023), k);
    const __m512i pair = _mm512_i32gather_epi32(j, (const void *)t, 2);
    const __m512i a = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), b = _mm512_srai_epi32(pair, 16);
    const __m512i m = V512(mirror), top = V512(32767);
    const __m512i lo = _mm512_mask_min_epi32(a, up, _mm512_sub_epi32(m, b), top);
    const __m512i hi = _mm512_mask_min_epi32(b, up, _mm512_sub_epi32(m, a), top);
#endif
    return _mm512_add_epi32(lo, _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(_mm512_sub_epi32(hi, lo), fr), V512(64)), 7));
}
static inline __m512i v_load16(const int16_t *p) { return _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)p)); }
static inline void v_store16(int16_t *p, __m512i v) { _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(v)); }
static inline void v_store8(int8_t *p, __m512i v) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(v)); }
static inline __m512i v_load(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }
#endif

/* out[j] = term(acc[j]) for the rows of one matrix */
static void terms(int32_t *acc, const int32_t *mult, const int8_t *shift, int rows) {
    int j = 0;
#if RS_SIMD == 3
    for (; j + 16 <= rows; j += 16) {
        const __m512i n = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(shift + j)));
        _mm512_storeu_si512((void *)(acc + j), v_requant(v_load(acc + j), v_load(mult + j), n, -PRE_SAT, PRE_SAT));
    }
#endif
    for (; j < rows; j++) acc[j] = term(acc[j], mult[j], shift[j]);
}

/* int8 codes of a Q0.15 hidden state (GRU / RNN) into hbuf */
static void h8_codes(int8_t *dst, const int16_t *h16, const rs_layer *ly, int H) {
    int k = 0;
#if RS_SIMD == 3
    const __m512i hm = V512(ly->h_mult), hs = V512(ly->h_shift);
    for (; k + 16 <= H; k += 16) v_store8(dst + k, v_requant(v_load16(h16 + k), hm, hs, -Q8_MAX, Q8_MAX));
#endif
    for (; k < H; k++) dst[k] = (int8_t)h8_of(h16[k], ly);
}

/* ---- delta networks (Neil et al. 2017) ------------------------------------------------
   A delta step keeps, per delta matrix W (W_ih: input codes x, W_hh: hidden codes h), the last
   transmitted codes `last` and the int32 accumulators M = W last. Each step, column j with
   |x_j - last_j| >= thr is transmitted: M += W[:, j] (x_j - last_j), last_j = x_j; the others are
   skipped. The gate terms are then requant(M) exactly as the dense step's requant(W x), so
   thr 0 (every column transmitted) equals the dense step bit for bit and thr 1 (only unchanged
   columns skipped) too; larger thresholds approximate. The all-zero delta state (last = 0,
   M = 0) is consistent with any recurrent state, so a stream starts (or restarts) by zeroing it.
   The caller's delta state (rs_core_delta_bytes, 8-byte aligned) holds int64 counters
   [steps, unused, (kept columns of W_ih, of W_hh) per layer], then per layer M_x, M_h (int32
   [rows_c]), last_x, last_h (int8 [cols_p]), then the list of transmitted columns (scratch). */
#define RS_DROWS 64 /* rows per chunk of the delta accumulation; column copies are padded to it */

typedef struct {
    int32_t *mx, *mh, *kidx, *kd, *ko; /* ko: the old codes of the transmitted columns */
    int8_t *lx, *lh;
    int64_t *cnt; /* [2]: kept columns of W_ih, of W_hh */
} rs_dlayer;

static int rs_rows_c(const rs_layer *ly) { return (ly->rows + RS_DROWS - 1) / RS_DROWS * RS_DROWS; }

/* walks the delta state: layer l's part (dl != NULL) and / or the total size in bytes */
static size_t rs_delta_layout(const rs_model *m, unsigned char *base, int want, rs_dlayer *dl) {
    size_t off = sizeof(int64_t) * (size_t)(2 + 2 * m->L);
    int l;
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &m->layers[l];
        const size_t rc = (size_t)rs_rows_c(ly);
        if (l == want && dl) {
            dl->cnt = (int64_t *)(void *)base + 2 + 2 * l;
            dl->mx = (int32_t *)(void *)(base + off);
            dl->mh = dl->mx + rc;
            dl->lx = (int8_t *)(base + off + 8 * rc);
            dl->lh = dl->lx + ly->wx.cols_p;
        }
        off += 8 * rc + (size_t)ly->wx.cols_p + (size_t)ly->wh.cols_p;
    }
    off = (off + 7) & ~(size_t)7;
    if (dl) {
        dl->kidx = (int32_t *)(void *)(base + off);
        dl->kd = dl->kidx + m->max_cols + 4;
        dl->ko = dl->kd + m->max_cols + 4;
    }
    return off + sizeof(int32_t) * 3 * ((size_t)m->max_cols + 4);
}

/* bytes of the delta state of one stream (zero it to start a stream) */
static RS_MAYBE_UNUSED size_t rs_core_delta_bytes(const rs_model *m) { return rs_delta_layout(m, NULL, -1, NULL); }

/* M[0:rows_c] += sum over the n transmitted columns i of column kidx[i] of W times kd[i] (kd = new
   - old code, ko = old code). wc is column-blocked: the slice of column j in the chunk of rows
   r .. r + 63 is the 64 bytes at (r / 64 * cols + j) * 64, so one chunk reads one contiguous
   cols x 64-byte block (the kept slices only). Every path is exact:
   AVX512-VNNI  four columns at a time: their 64-row slices interleaved into 16 x 4 tiles, then
                vpdpbusd on the new codes minus vpdpbusd on the old ones (both as code ^ 0x80: the
                128 * column sums cancel in the difference, int32 wrap-around included)
   AVX2         two columns at a time: int16 rows interleaved, vpmaddwd with (d_a, d_b)
                (|w| <= 127, |d| <= 254: products and pair sums fit)
   n is padded (to 4 or 2) with copies of column kidx[0] with a zero delta. */
static void delta_accumulate(const int8_t *wc, int rows_c, int cols, int32_t *kidx, int32_t *kd, int32_t *ko,
                             int n, int32_t *M) {
    int r, i;
#if RS_SIMD == 3
    for (; n & 3; n++) { kidx[n] = kidx[0]; kd[n] = 0; ko[n] = 0; }
    for (r = 0; r < rows_c; r += RS_DROWS) {
        /* dword 4k + i of tile m holds row 16k + 4m + i of the chunk */
        __m512i A[4], B[4], D[4], u0, u1, u2, u3;
        int q;
        const int8_t *blk = wc + (size_t)r * (size_t)cols; /* this chunk's slices: (r / 64) * cols * 64 */
        for (q = 0; q < 4; q++) A[q] = B[q] = _mm512_setzero_si512();
        for (i = 0; i < n; i += 4) {
            const __m512i c0 = _mm512_loadu_si512((const void *)(blk + (size_t)kidx[i] * RS_DROWS));
            const __m512i c1 = _mm512_loadu_si512((const void *)(blk + (size_t)kidx[i + 1] * RS_DROWS));
            const __m512i c2 = _mm512_loadu_si512((const void *)(blk + (size_t)kidx[i + 2] * RS_DROWS));
            const __m512i c3 = _mm512_loadu_si512((const void *)(blk + (size_t)kidx[i + 3] * RS_DROWS));
            const __m512i t0 = _mm512_unpacklo_epi8(c0, c1), t1 = _mm512_unpackhi_epi8(c0, c1);
            const __m512i t2 = _mm512_unpacklo_epi8(c2, c3), t3 = _mm512_unpackhi_epi8(c2, c3);
            uint32_t un = 0, uo = 0;
            for (q = 0; q < 4; q++) {
                un |= (uint32_t)(uint8_t)((ko[i + q] + kd[i + q]) ^ 0x80) << (8 * q);
                uo |= (uint32_t)(uint8_t)(ko[i + q] ^ 0x80) << (8 * q);
            }
            {
                const __m512i vn = _mm512_set1_epi32((int32_t)un), vo = _mm512_set1_epi32((int32_t)uo);
                const __m512i w0 = _mm512_unpacklo_epi16(t0, t2), w1 = _mm512_unpackhi_epi16(t0, t2);
                const __m512i w2 = _mm512_unpacklo_epi16(t1, t3), w3 = _mm512_unpackhi_epi16(t1, t3);
                A[0] = _mm512_dpbusd_epi32(A[0], vn, w0); B[0] = _mm512_dpbusd_epi32(B[0], vo, w0);
                A[1] = _mm512_dpbusd_epi32(A[1], vn, w1); B[1] = _mm512_dpbusd_epi32(B[1], vo, w1);
                A[2] = _mm512_dpbusd_epi32(A[2], vn, w2); B[2] = _mm512_dpbusd_epi32(B[2], vo, w2);
                A[3] = _mm512_dpbusd_epi32(A[3], vn, w3); B[3] = _mm512_dpbusd_epi32(B[3], vo, w3);
            }
        }
        for (q = 0; q < 4; q++) D[q] = _mm512_sub_epi32(A[q], B[q]);
        /* 4 x 4 transpose of 128-bit lanes: rows 16k .. 16k+15 = lane k of D[0..3] */
        u0 = _mm512_shuffle_i32x4(D[0], D[1], 0x44); u1 = _mm512_shuffle_i32x4(D[2], D[3], 0x44);
        u2 = _mm512_shuffle_i32x4(D[0], D[1], 0xEE); u3 = _mm512_shuffle_i32x4(D[2], D[3], 0xEE);
        D[0] = _mm512_shuffle_i32x4(u0, u1, 0x88); D[1] = _mm512_shuffle_i32x4(u0, u1, 0xDD);
        D[2] = _mm512_shuffle_i32x4(u2, u3, 0x88); D[3] = _mm512_shuffle_i32x4(u2, u3, 0xDD);
        for (q = 0; q < 4; q++)
            _mm512_storeu_si512((void *)(M + r + 16 * q), _mm512_add_epi32(v_load(M + r + 16 * q), D[q]));
    }
#elif RS_SIMD == 2
    (void)ko;
    if (n & 1) { kidx[n] = kidx[0]; kd[n] = 0; n++; }
    for (r = 0; r < rows_c; r += RS_DROWS) {
        __m256i lo[4], hi[4];
        int q;
        const int8_t *blk = wc + (size_t)r * (size_t)cols;
        for (q = 0; q < 4; q++) lo[q] = hi[q] = _mm256_setzero_si256();
        for (i = 0; i < n; i += 2) {
            const int8_t *a = blk + (size_t)kidx[i] * RS_DROWS, *b = blk + (size_t)kidx[i + 1] * RS_DROWS;
            const __m256i dp = _mm256_set1_epi32((int32_t)(((uint32_t)kd[i] & 0xFFFFu) | ((uint32_t)kd[i + 1] << 16)));
            for (q = 0; q < 4; q++) {
                const __m256i aq = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + 16 * q)));
                const __m256i bq = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 16 * q)));
                lo[q] = _mm256_add_epi32(lo[q], _mm256_madd_epi16(_mm256_unpacklo_epi16(aq, bq), dp));
                hi[q] = _mm256_add_epi32(hi[q], _mm256_madd_epi16(_mm256_unpackhi_epi16(aq, bq), dp));
            }
        }
        for (q = 0; q < 4; q++) { /* lane k of lo: rows 8k .. 8k+3, of hi: rows 8k+4 .. 8k+7 */
            int32_t *y = M + r + 16 * q;
            _mm256_storeu_si256((__m256i *)y, _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)y),
                                                               _mm256_permute2x128_si256(lo[q], hi[q], 0x20)));
            _mm256_storeu_si256((__m256i *)(y + 8), _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(y + 8)),
                                                                     _mm256_permute2x128_si256(lo[q], hi[q], 0x31)));
        }
    }
#else
    (void)ko;
    for (r = 0; r < rows_c; r += RS_DROWS) {
        const int8_t *blk = wc + (size_t)r * (size_t)cols;
        for (i = 0; i < n; i++) {
            const int8_t *c = blk + (size_t)kidx[i] * RS_DROWS;
            const int32_t d = kd[i];
            int t;
            for (t = 0; t < RS_DROWS; t++) M[r + t] += (int32_t)c[t] * d;
        }
    }
#endif
}

/* the delta update of one matrix for codes x[0:cols]; returns the number of transmitted columns */
static int delta_update(const int8_t *wc, int rows_c, int cols, int32_t thr, const int8_t *x, int8_t *last,
                        int32_t *M, int32_t *kidx, int32_t *kd, int32_t *ko) {
    int j, n = 0;
    for (j = 0; j < cols; j++) { /* branch-free compaction: whether a column is kept is data, not a jump */
        const int32_t d = (int32_t)x[j] - (int32_t)last[j], keep = (d < 0 ? -d : d) >= thr;
        kidx[n] = j;
        ko[n] = last[j];
        kd[n] = d;
        n += keep;
        last[j] = (int8_t)(keep ? x[j] : last[j]);
    }
    if (n) delta_accumulate(wc, rows_c, cols, kidx, kd, ko, n, M);
    return n;
}

/* ---- the chunked step ------------------------------------------------------------------
   A layer's step runs its units in chunks of U (rs_chunk_units): per chunk, the gate rows of those
   units of W_ih x and of W_hh h (row blocks u0 / RB .. of each gate: packed matrices of every
   format are organised by row blocks of RB rows, and gate g of units u0 .. u0 + U - 1 is rows
   g * hidden + u0 .. of the (G * hidden, cols) matrices) into the int32 accumulators ax, ah (G * U
   rows each, gate g at g * U), then the cell update of those units right away. The accumulators
   so hold one chunk, not G * hidden rows (max_chunk: the step's RAM). The codes of h_{t-1} stay in
   hbuf (and ubuf + max_cols) until every chunk has read them; the new codes go to y, c (LSTM) and
   h16 (GRU / RNN) are updated in place, unit by unit. Integer sums are exact: the order of the
   chunks changes no bit. A hidden size that is not a multiple of RB runs as one chunk of every
   unit (gate rows would straddle row blocks) with rows_p accumulators. */

/* units per chunk: 16 (LSTM: 4 row blocks), 32 (GRU: 6), 64 (RNN: 4) where hidden allows, else
   16, else every unit */
static int rs_chunk_units(const rs_layer *ly) {
    const int G = ly->rows / ly->hidden;
    int U = G >= 4 ? RB : (G == 3 ? 2 * RB : 4 * RB);
    while (U > RB && ly->hidden % U) U /= 2;
    return ly->hidden % U ? ly->hidden : U;
}

/* int32 rows of one chunk's accumulators (ax, ah) */
static inline int rs_chunk_rows(const rs_layer *ly) {
    return ly->hidden % RB ? ly->wx.rows_p : ly->rows / ly->hidden * rs_chunk_units(ly);
}

/* the row blocks of the first chunk (units 0 .. U - 1); the chunk of units from u0 has b0 = u0 / RB */
static rs_blocks rs_chunk_blocks(const rs_layer *ly, int U) {
    rs_blocks B;
    B.b0 = 0;
    if (ly->hidden % RB) {
        B.lp = 0; B.step = 1; B.n = ly->wx.rows_p / RB;
    } else { /* U / RB is 1, 2 or 4 blocks per gate */
        const int per = U / RB;
        B.lp = per == 4 ? 2 : per - 1; B.step = ly->hidden / RB;
        B.n = ly->rows / ly->hidden * per;
    }
    return B;
}

/* the gate terms (Q.12) of the chunk B of one matrix into acc: requant of the product, or of the
   delta accumulators M (a delta step: M = W last, every row, updated before the chunks) */
static void chunk_terms(const rs_layer *ly, const rs_mat *w, const int8_t *x, const uint8_t *u, const int32_t *M,
                        const int32_t *mult, const int8_t *shift, const rs_blocks *B, int32_t *acc) {
    int i;
    if (!M) matvec_blocks(w, x, u, acc, B);
    for (i = 0; i < B->n; i++) {
        const int r0 = (int)RS_BLK(i) * RB, n = ly->rows - r0 < RB ? ly->rows - r0 : RB;
        if (M) memcpy(acc + i * RB, M + r0, sizeof(int32_t) * RB);
        if (n > 0) terms(acc + i * RB, mult + r0, shift + r0, n);
    }
}

/* Before the chunks, the codes every chunk reads: the layer's input codes x into xbuf / ubuf (or
   W_ih's delta update), h_{t-1}'s codes (already in hbuf) padded, unsigned into ubuf + max_cols (or
   W_hh's delta update). Returns the folded table row of `token` (layer 0's input terms), or NULL. */
static const int32_t *layer_codes(const rs_model *m, const rs_layer *ly, const int8_t *x, int token,
                                  const rs_dlayer *dl) {
    const int32_t *table = ly->tx_table ? ly->tx_table + (size_t)token * (size_t)ly->rows : NULL;
    if (!table && dl && ly->wx_cols)
        dl->cnt[0] += delta_update(ly->wx_cols, rs_rows_c(ly), ly->input, ly->delta_thr, x, dl->lx, dl->mx,
                                   dl->kidx, dl->kd, dl->ko);
    else if (!table)
        load_codes(m->xbuf, m->ubuf, x, ly->input, ly->wx.cols_p);
    if (dl && ly->wh_cols)
        dl->cnt[1] += delta_update(ly->wh_cols, rs_rows_c(ly), ly->hidden, ly->delta_thr, m->hbuf, dl->lh, dl->mh,
                                   dl->kidx, dl->kd, dl->ko);
    else
        load_codes(m->hbuf, m->ubuf + m->max_cols, m->hbuf, ly->hidden, ly->wh.cols_p);
    return table;
}

/* The chunk of U units from u0 (its row blocks B): tx[g], ah[g] point at the input / recurrent terms
   of gate g of its first unit (tx: into the folded table row, or ax) */
static void chunk_gates(const rs_model *m, const rs_layer *ly, const int32_t *table, const rs_dlayer *dl, int u0,
                        int U, const rs_blocks *B, const int32_t **tx, const int32_t **ah) {
    const int G = ly->rows / ly->hidden;
    int g;
    if (!table)
        chunk_terms(ly, &ly->wx, m->xbuf, m->ubuf, dl && ly->wx_cols ? dl->mx : NULL, ly->mult_x, ly->shift_x, B, m->ax);
    chunk_terms(ly, &ly->wh, m->hbuf, m->ubuf + m->max_cols, dl && ly->wh_cols ? dl->mh : NULL, ly->mult_h, ly->shift_h,
                B, m->ah);
    for (g = 0; g < G; g++) {
        tx[g] = table ? table + g * ly->hidden + u0 : m->ax + g * U;
        ah[g] = m->ah + g * U;
    }
}

/* LSTM units u0 .. u0 + U - 1 (hs, cs, y: from unit u0; b: the bias from unit u0, gate g at g * H) */
static void lstm_units(const rs_layer *ly, const int32_t *const *tx, const int32_t *const *ah, const int32_t *b,
                       int16_t *hs, int16_t *cs, int8_t *y, int U) {
    const int H = ly->hidden, cf = ly->cf;
    int k = 0;
#if RS_SIMD == 3
    {
        const __m512i hm = V512(ly->h_mult), hsh = V512(ly->h_shift);
#define RS_PRE(g) _mm512_add_epi32(_mm512_add_epi32(v_load(tx[g] + k), v_load(ah[g] + k)), v_load(b + (g) * H + k))
        for (; k + 16 <= U; k += 16) {
            const __m512i i = v_lut(ly->sig, LUT_SIG_MIRROR, RS_PRE(0)), f = v_lut(ly->sig, LUT_SIG_MIRROR, RS_PRE(1));
            const __m512i g = v_lut(ly->tanh_, LUT_TANH_MIRROR, RS_PRE(2)), o = v_lut(ly->sig, LUT_SIG_MIRROR, RS_PRE(3));
            const __m512i c = v_clamp(_mm512_add_epi32(v_rshr(_mm512_mullo_epi32(f, v_load16(cs + k)), 15),
                                                       v_rshr(_mm512_mullo_epi32(i, g), 30 - cf)), -32768, 32767);
            const __m512i c12 = cf >= 12 ? v_rshr(c, cf - 12) : _mm512_sll_epi32(c, _mm_cvtsi32_si128(12 - cf));
            const __m512i h8 = v_requant(_mm512_mullo_epi32(o, v_lut(ly->tanh_, LUT_TANH_MIRROR, c12)), hm, hsh, -Q8_MAX, Q8_MAX);
            v_store16(cs + k, c);
            v_store16(hs + k, h8);
            v_store8(y + k, h8);
        }
#undef RS_PRE
    }
#endif
    for (; k < U; k++) {
        const int32_t i = RS_SIG(ly->sig, tx[0][k] + ah[0][k] + b[k]), f = RS_SIG(ly->sig, tx[1][k] + ah[1][k] + b[H + k]);
        const int32_t g = RS_TANH(ly->tanh_, tx[2][k] + ah[2][k] + b[2 * H + k]);
        const int32_t o = RS_SIG(ly->sig, tx[3][k] + ah[3][k] + b[3 * H + k]);
        const int32_t c = clamp32(rshr(f * (int32_t)cs[k], 15) + rshr(i * g, 30 - cf), -32768, 32767);
        const int32_t c12 = cf >= 12 ? rshr(c, cf - 12) : c * (1 << (12 - cf));
        const int32_t h8 = clamp32(requant((int64_t)o * RS_TANH(ly->tanh_, c12), ly->h_mult, ly->h_shift), -Q8_MAX, Q8_MAX);
        cs[k] = (int16_t)c;
        hs[k] = (int16_t)h8;
        y[k] = (int8_t)h8;
    }
}

static void lstm_layer(const rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y,
                       const rs_dlayer *dl) {
    const int H = ly->hidden, U = rs_chunk_units(ly);
    const int32_t *table, *tx[4], *ah[4];
    rs_blocks B = rs_chunk_blocks(ly, U);
    int k, u0;
    for (k = 0; k < H; k++) m->hbuf[k] = (int8_t)st[k]; /* the state keeps h as int8 codes */
    table = layer_codes(m, ly, x, token, dl);
    for (u0 = 0; u0 < H; u0 += U, B.b0 += U / RB) {
        chunk_gates(m, ly, table, dl, u0, U, &B, tx, ah);
        lstm_units(ly, tx, ah, ly->bias + u0, st + u0, st + H + u0, y + u0, U);
    }
}

/* GRU units u0 .. u0 + U - 1 (st, y: from unit u0; b: the bias from unit u0, [r | z | n_x | n_h] at g * H) */
static void gru_units(const rs_layer *ly, const int32_t *const *tx, const int32_t *const *ah, const int32_t *b,
                      int16_t *st, int8_t *y, int U) {
    const int H = ly->hidden;
    int k = 0;
#if RS_SIMD == 3
    for (; k + 16 <= U; k += 16) {
        const __m512i r = v_lut(ly->sig, LUT_SIG_MIRROR, _mm512_add_epi32(_mm512_add_epi32(v_load(tx[0] + k), v_load(ah[0] + k)), v_load(b + k)));
        const __m512i z = v_lut(ly->sig, LUT_SIG_MIRROR, _mm512_add_epi32(_mm512_add_epi32(v_load(tx[1] + k), v_load(ah[1] + k)), v_load(b + H + k)));
        const __m512i hn = _mm512_add_epi32(v_load(ah[2] + k), v_load(b + 3 * H + k));
        const __m512i n = v_lut(ly->tanh_, LUT_TANH_MIRROR, _mm512_add_epi32(_mm512_add_epi32(v_load(tx[2] + k), v_load(b + 2 * H + k)),
                                                            v_mul_rshr15(r, hn)));
        const __m512i h16 = v_clamp(_mm512_add_epi32(n, v_rshr(_mm512_mullo_epi32(z, _mm512_sub_epi32(v_load16(st + k), n)), 15)),
                                    -32767, 32767);
        v_store16(st + k, h16);
        v_store8(y + k, v_requant(h16, V512(ly->h_mult), V512(ly->h_shift), -Q8_MAX, Q8_MAX));
    }
#endif
    for (; k < U; k++) {
        const int32_t r = RS_SIG(ly->sig, tx[0][k] + ah[0][k] + b[k]);
        const int32_t z = RS_SIG(ly->sig, tx[1][k] + ah[1][k] + b[H + k]);
        const int32_t hn = ah[2][k] + b[3 * H + k];
        const int32_t n = RS_TANH(ly->tanh_, tx[2][k] + b[2 * H + k] + (int32_t)rshr64((int64_t)r * hn, 15));
        const int32_t h16 = clamp32(n + rshr(z * ((int32_t)st[k] - n), 15), -32767, 32767);
        st[k] = (int16_t)h16;
        y[k] = (int8_t)h8_of(h16, ly);
    }
}

/* tanh-RNN units u0 .. u0 + U - 1 */
static void rnn_units(const rs_layer *ly, const int32_t *const *tx, const int32_t *const *ah, const int32_t *b,
                      int16_t *st, int8_t *y, int U) {
    int k = 0;
#if RS_SIMD == 3
    for (; k + 16 <= U; k += 16) {
        const __m512i h16 = v_lut(ly->tanh_, LUT_TANH_MIRROR, _mm512_add_epi32(_mm512_add_epi32(v_load(tx[0] + k), v_load(ah[0] + k)), v_load(b + k)));
        v_store16(st + k, h16);
        v_store8(y + k, v_requant(h16, V512(ly->h_mult), V512(ly->h_shift), -Q8_MAX, Q8_MAX));
    }
#endif
    for (; k < U; k++) {
        const int32_t h16 = RS_TANH(ly->tanh_, tx[0][k] + ah[0][k] + b[k]);
        st[k] = (int16_t)h16;
        y[k] = (int8_t)h8_of(h16, ly);
    }
}

/* GRU / tanh-RNN layer: the Q0.15 state's int8 codes into hbuf, then the chunks */
static void h16_layer(const rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y,
                      const rs_dlayer *dl) {
    const int H = ly->hidden, U = rs_chunk_units(ly);
    const int32_t *table, *tx[4], *ah[4];
    rs_blocks B = rs_chunk_blocks(ly, U);
    int u0;
    h8_codes(m->hbuf, st, ly, H);
    table = layer_codes(m, ly, x, token, dl);
    for (u0 = 0; u0 < H; u0 += U, B.b0 += U / RB) {
        chunk_gates(m, ly, table, dl, u0, U, &B, tx, ah);
        if (m->cell == CELL_GRU) gru_units(ly, tx, ah, ly->bias + u0, st + u0, y + u0, U);
        else rnn_units(ly, tx, ah, ly->bias + u0, st + u0, y + u0, U);
    }
}

/* one step of one layer of any cell */
static void layer_step(const rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y,
                       const rs_dlayer *dl) {
    if (m->cell == CELL_LSTM) lstm_layer(m, ly, x, token, st, y, dl);
    else h16_layer(m, ly, x, token, st, y, dl);
}

/* The layer-0 input codes of `token`: its row of emb; with a tied embedding (emb_tied) the row of
   the decoder's dense tiles [V / RB][E_p / KB][RB][KB], gathered KB codes per tile into m->ybuf
   (free until layer 0 writes its output, after it read its input); NULL where layer 0 (ly, or its
   backward direction) reads its folded table instead. */
static const int8_t *rs_token_codes(const rs_model *m, const rs_layer *ly, int token) {
    const int8_t *p;
    int kg, KG;
    if (ly->tx_table) return NULL;
    if (!m->emb_tied) return m->emb + (size_t)token * (size_t)m->E;
    KG = m->dec.cols_p / KB;
    p = m->dec.w + (size_t)(token / RB) * (size_t)KG * RB * KB + (size_t)(token % RB) * KB;
    for (kg = 0; kg < KG; kg++) memcpy(m->ybuf + kg * KB, p + (size_t)kg * RB * KB, KB);
    return m->ybuf;
}

/* Every layer and the decoder for layer-0 input codes x (NULL: the folded table row of
   `token`); the decoder accumulators (acc + bias, int32) land in m->acc. state (state_len
   int16, per layer LSTM [h8 | c], GRU/RNN [h16]) is updated in place. ds: the delta state
   (delta step), or NULL (the dense step). */
static void rs_core_layers(const rs_model *m, const int8_t *x, int token, int16_t *state, void *ds) {
    int l, j;
    if (ds) ((int64_t *)ds)[0]++;
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &m->layers[l];
        rs_dlayer dl, *d = NULL;
        if (ds) rs_delta_layout(m, (unsigned char *)ds, l, d = &dl);
        /* y is written to ybuf; the next layer copies it into xbuf before overwriting ybuf */
        layer_step(m, ly, x, token, state, m->ybuf, d);
        state += (m->cell == CELL_LSTM ? 2 : 1) * ly->hidden;
        x = m->ybuf;
    }
    load_codes(m->hbuf, m->ubuf, x, m->dec.cols, m->dec.cols_p);
    matvec(&m->dec, m->hbuf, m->ubuf, m->acc);
    for (j = 0; j < m->O; j++) m->acc[j] += m->dec_b[j];
}

/* One token (embedding models). Returns 0, or -1 for a token outside [0, V) (state untouched).
   ds: the stream's delta state for a delta step ("delta networks" above), or NULL. */
static RS_MAYBE_UNUSED int rs_core_forward_delta(const rs_model *m, int64_t token, int16_t *state, void *ds) {
    if (m->in.kind != INPUT_EMBEDDING || token < 0 || token >= m->V) return -1;
    rs_core_layers(m, rs_token_codes(m, &m->layers[0], (int)token), (int)token, state, ds);
    return 0;
}

static RS_MAYBE_UNUSED int rs_core_forward(const rs_model *m, int64_t token, int16_t *state) {
    return rs_core_forward_delta(m, token, state, NULL);
}

/* round half to even of v in float32 arithmetic, for |v| <= 2^22 (adding and removing
   1.5 * 2^23 leaves no fraction bits; the addition rounds to nearest even) */
static inline float rs_round_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

static inline int8_t rs_q8(float x, float scale) {
    float v = x / scale; /* float32 division, as torch's x.float() / scale */
    if (!(v == v)) return 0; /* NaN */
    if (v >= 127.0f) return Q8_MAX;
    if (v <= -127.0f) return -Q8_MAX;
    return (int8_t)rs_round_even(v);
}

/* The E layer-0 input codes from the projection's F input codes in hbuf (linear input) */
static void rs_project_codes(const rs_model *m, int8_t *y) {
    const rs_input *in = &m->in;
    int k;
    load_codes(m->xbuf, m->ubuf, m->hbuf, in->F, in->w.cols_p);
    matvec(&in->w, m->xbuf, m->ubuf, m->acc);
    for (k = 0; k < m->E; k++) {
        const int32_t v = clamp32(requant((int64_t)m->acc[k] + in->bias[k], in->mult[k], in->shift[k]), -Q8_MAX, Q8_MAX);
        y[k] = in->act ? in->act[v + 128] : (int8_t)v;
    }
}

/* The E layer-0 input codes of F float features (identity, or the int8 input projection) */
static void rs_feature_codes(const rs_model *m, const float *x, int8_t *y) {
    const rs_input *in = &m->in;
    int k;
    if (in->kind == INPUT_IDENTITY) {
        for (k = 0; k < in->F; k++) y[k] = rs_q8(x[k], in->in_scale);
    } else {
        for (k = 0; k < in->F; k++) m->hbuf[k] = rs_q8(x[k], in->in_scale);
        rs_project_codes(m, y);
    }
}

static int rs_windowed(const rs_model *m) { return m->in.kind == INPUT_LINEAR && (m->in.window > 1 || m->in.padding > 0); }

/* Output step t of a windowed model over x[T][frame]: the codes of its window (zero codes for
   the padding frames), then the projection */
static void rs_window_codes(const rs_model *m, const float *x, int T, int t, int8_t *y) {
    const rs_input *in = &m->in;
    int j, f;
    for (j = 0; j < in->window; j++) {
        const int s = t - in->padding + j;
        int8_t *c = m->hbuf + (size_t)j * (size_t)in->frame;
        for (f = 0; f < in->frame; f++) c[f] = (s >= 0 && s < T) ? rs_q8(x[(size_t)s * (size_t)in->frame + (size_t)f], in->in_scale) : 0;
    }
    rs_project_codes(m, y);
}

/* Output steps of a whole sequence of T input frames (T + 2 padding - window + 1 when windowed, < 0: none) */
static int rs_run_steps(const rs_model *m, int T) { return rs_windowed(m) ? T + 2 * m->in.padding - m->in.window + 1 : T; }

/* One step of a feature model (x: F floats). Returns 0, or -1 when the model takes tokens or
   has a windowed input (whole sequences only). */
static RS_MAYBE_UNUSED int rs_core_forward_features_delta(const rs_model *m, const float *x, int16_t *state, void *ds) {
    if (m->in.kind == INPUT_EMBEDDING || rs_windowed(m)) return -1;
    rs_feature_codes(m, x, m->ybuf);
    rs_core_layers(m, m->ybuf, -1, state, ds);
    return 0;
}

static RS_MAYBE_UNUSED int rs_core_forward_features(const rs_model *m, const float *x, int16_t *state) {
    return rs_core_forward_features_delta(m, x, state, NULL);
}

static void rs_logits(const rs_model *m, float *logits) {
    int j;
    for (j = 0; j < m->O; j++) logits[j] = (float)m->acc[j] * m->dec_scale[j];
}

/* logits[O] = float(acc + bias) * scale (the only float operation of a step) */
static RS_MAYBE_UNUSED int rs_core_step(const rs_model *m, int64_t token, int16_t *state, float *logits) {
    if (rs_core_forward(m, token, state)) return -1;
    rs_logits(m, logits);
    return 0;
}

static RS_MAYBE_UNUSED int rs_core_step_features(const rs_model *m, const float *x, int16_t *state, float *logits) {
    if (rs_core_forward_features(m, x, state)) return -1;
    rs_logits(m, logits);
    return 0;
}

/* Delta steps (see "delta networks" above): as rs_core_step / rs_core_step_features, with the
   stream's delta state ds (rs_core_delta_bytes, 8-byte aligned, zeroed at the stream's start). */
static RS_MAYBE_UNUSED int rs_core_step_delta(const rs_model *m, int64_t token, int16_t *state, void *ds, float *logits) {
    if (rs_core_forward_delta(m, token, state, ds)) return -1;
    rs_logits(m, logits);
    return 0;
}

static RS_MAYBE_UNUSED int rs_core_step_features_delta(const rs_model *m, const float *x, int16_t *state, void *ds, float *logits) {
    if (rs_core_forward_features_delta(m, x, state, ds)) return -1;
    rs_logits(m, logits);
    return 0;
}

/* ---- whole sequence ------------------------------------------------------------------- */
/* rs_core_run: every layer over the whole sequence, one layer (both directions) at a time, from
   the zero state, exactly SequenceModel.forward of the integer model. Each direction walks the
   sequence (the backward one from the end) and writes its int8 output codes into columns
   [d * H, (d + 1) * H) of a T x W code buffer, the next layer's input; two such buffers
   alternate. The caller provides the workspace (rs_core_run_workspace(m, T) bytes, any
   alignment): 63 bytes of alignment slack, one direction's state (int16, 64-byte aligned), a
   delta state when some layer has a delta step (zeroed per direction: the delta step from the
   zero state, as a stream of delta steps from a fresh state), then the code buffers. Nothing is allocated and nothing outside it and the model's scratch
   buffers is written. */
enum { RS_READOUT_ALL = 0, RS_READOUT_LAST = 1 };
#define RS_ALIGN_UP64(n) (((size_t)(n) + 63) & ~(size_t)63)

/* W: widest code row (layer outputs D * H; the layer-0 input codes of a feature model),
   S: int16 words of the largest one-direction state, nbuf: code buffers needed (1 or 2) */
static void rs_run_dims(const rs_model *m, size_t *W, size_t *S, int *nbuf) {
    int l;
    *W = m->in.kind == INPUT_EMBEDDING ? 0 : (size_t)m->E;
    *S = 0;
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &m->layers[l];
        const size_t w = (size_t)(ly->rev ? 2 : 1) * (size_t)ly->hidden,
                     s = (size_t)(m->cell == CELL_LSTM ? 2 : 1) * (size_t)ly->hidden;
        if (w > *W) *W = w;
        if (s > *S) *S = s;
    }
    *nbuf = (m->L + (m->in.kind == INPUT_EMBEDDING ? 0 : 1)) >= 2 ? 2 : 1;
}

/* bytes of the delta state inside rs_core_run's workspace (0: no layer has a delta step) */
static size_t rs_run_delta_bytes(const rs_model *m) {
    int l;
    for (l = 0; l < m->L; l++)
        if (m->layers[l].wh_cols) return RS_ALIGN_UP64(rs_core_delta_bytes(m));
    return 0;
}

/* bytes of the workspace rs_core_run needs for T steps (T input frames of a windowed model: room
   for T + max(0, 2 padding - window + 1) output steps, so the size stays fixed + per step * T) */
static RS_MAYBE_UNUSED size_t rs_core_run_workspace(const rs_model *m, int T) {
    size_t W, S;
    int nbuf;
    if (rs_windowed(m) && 2 * m->in.padding - m->in.window + 1 > 0) T += 2 * m->in.padding - m->in.window + 1;
    rs_run_dims(m, &W, &S, &nbuf);
    return 63 + RS_ALIGN_UP64(2 * S) + rs_run_delta_bytes(m) + (size_t)nbuf * (size_t)(T > 0 ? T : 0) * W;
}

/* one direction of one layer over the sequence: input codes in[t][0 .. input) (row stride W), or
   for layer 0 of a token model the embedding row / folded table row of tokens[t]; output codes
   out[t][0 .. hidden) (row stride W); dl: the layer's delta state (zeroed here) or NULL */
static void rs_run_direction(const rs_model *m, const rs_layer *ly, const int8_t *in, const int32_t *tokens, int T,
                             size_t W, int reverse, int16_t *st, int8_t *out, const rs_dlayer *dl) {
    int i;
    memset(st, 0, sizeof(int16_t) * (size_t)(m->cell == CELL_LSTM ? 2 : 1) * (size_t)ly->hidden);
    if (dl) {
        memset(dl->mx, 0, sizeof(int32_t) * 2 * (size_t)rs_rows_c(ly));
        memset(dl->lx, 0, (size_t)ly->wx.cols_p + (size_t)ly->wh.cols_p);
    }
    for (i = 0; i < T; i++) {
        const int t = reverse ? T - 1 - i : i, token = in ? -1 : (int)tokens[t];
        const int8_t *x = in ? in + (size_t)t * W : rs_token_codes(m, ly, token);
        int8_t *y = out + (size_t)t * W;
        layer_step(m, ly, x, token, st, y, dl);
    }
}

/* The whole sequence: tokens[T] (token model) or x[T][F] (feature model; x[T][frame] frames of a
   windowed one, which has T' = T + 2 padding - window + 1 output steps); exactly one is non-NULL.
   logits: readout RS_READOUT_ALL [T'][O] (every step), RS_READOUT_LAST [O] (the final step).
   Returns 0; t + 1 for a token outside [0, V) at step t (checked before anything runs); -1 for the
   wrong kind of input, T < 0, an unknown readout, readout last with T' == 0, or T' < 0 for T > 0. */
static RS_MAYBE_UNUSED int rs_core_run(const rs_model *m, const int32_t *tokens, const float *x, int T, void *work, int readout,
                       float *logits) {
    size_t W, S;
    int nbuf, l, t, t0, cur = 0;
    int8_t *buf[2], *in = NULL;
    unsigned char *p, *ds;
    int16_t *st;
    const int T_in = T;
    if (T < 0 || (readout != RS_READOUT_ALL && readout != RS_READOUT_LAST)) return -1;
    T = T > 0 ? rs_run_steps(m, T) : 0;
    if (T < 0 || (readout == RS_READOUT_LAST && T < 1)) return -1;
    if (T == 0) return 0; /* nothing is read or written */
    if ((m->in.kind == INPUT_EMBEDDING) ? (!tokens || x) : (!x || tokens)) return -1;
    if (tokens)
        for (t = 0; t < T; t++)
            if (tokens[t] < 0 || tokens[t] >= m->V) return t + 1;
    rs_run_dims(m, &W, &S, &nbuf);
    p = (unsigned char *)work + ((64 - ((uintptr_t)work & 63)) & 63);
    st = (int16_t *)(void *)p;
    ds = rs_run_delta_bytes(m) ? p + RS_ALIGN_UP64(2 * S) : NULL; /* 64-byte aligned */
    buf[0] = (int8_t *)(p + RS_ALIGN_UP64(2 * S) + rs_run_delta_bytes(m));
    buf[1] = nbuf > 1 ? buf[0] + (size_t)T * W : buf[0];
    if (x) { /* layer-0 input codes of every step */
        in = buf[1];
        for (t = 0; t < T; t++) {
            if (rs_windowed(m)) rs_window_codes(m, x, T_in, t, in + (size_t)t * W);
            else rs_feature_codes(m, x + (size_t)t * (size_t)m->in.F, in + (size_t)t * W);
        }
    }
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &m->layers[l];
        int8_t *out = buf[cur];
        rs_dlayer dl;
        if (ds && ly->wh_cols) rs_delta_layout(m, ds, l, &dl);
        rs_run_direction(m, ly, in, tokens, T, W, 0, st, out, ds && ly->wh_cols ? &dl : NULL);
        if (ly->rev) rs_run_direction(m, ly->rev, in, tokens, T, W, 1, st, out + ly->hidden, NULL);
        in = out;
        cur ^= 1;
    }
    t0 = readout == RS_READOUT_LAST ? T - 1 : 0;
    for (t = t0; t < T; t++) {
        int j;
        load_codes(m->hbuf, m->ubuf, in + (size_t)t * W, m->dec.cols, m->dec.cols_p);
        matvec(&m->dec, m->hbuf, m->ubuf, m->acc);
        for (j = 0; j < m->O; j++) m->acc[j] += m->dec_b[j];
        rs_logits(m, logits + (size_t)(t - t0) * (size_t)m->O);
    }
    return 0;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif /* RNNSLIM_CORE_H */
