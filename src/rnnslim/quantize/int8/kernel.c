/*
 * rnnslim fused integer step (C99): embedding -> unidirectional LSTM/GRU/tanh-RNN layers
 * -> decoder, batch 1, for models converted by rnnslim.quantize.int8 (integer mode).
 *
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
 *   portable     plain C loops (-DRS_PORTABLE forces this one)
 * Weights are packed once into blocks of 16 rows x 4 columns so the output rows lie in
 * the vector lanes and no horizontal sums are needed.
 *
 * Requires arithmetic right shift of negative integers (every mainstream compiler).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(RS_PORTABLE) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define RS_SIMD 3
#elif !defined(RS_PORTABLE) && defined(__AVX2__)
#define RS_SIMD 2
#else
#define RS_SIMD 0
#endif
#if RS_SIMD
#include <immintrin.h>
#endif

#define RB 16 /* rows per packed block */
#define KB 4  /* columns per packed group */
#define PRE_SAT (1 << 24)
#define LUT_SIZE 1025
#define LUT_LO (-65536)
#define LUT_HI 65535
#define Q8_MAX 127

enum { CELL_LSTM = 0, CELL_GRU = 1, CELL_RNN = 2 };

typedef struct {
    int rows, cols, rows_p, cols_p;
    int8_t *w;     /* [rows_p / RB][cols_p / KB][RB][KB] */
    int32_t *corr; /* 128 * sum_k w[r][k], for the unsigned-offset VNNI path */
} rs_mat;

typedef struct {
    int input, hidden, rows;
    rs_mat wx, wh;
    int32_t *mult_x, *mult_h, *bias;
    int8_t *shift_x, *shift_h;
    int32_t h_mult;
    int h_shift, cf;
    int16_t sig[LUT_SIZE], tanh_[LUT_SIZE];
    int32_t *tx_table; /* folded embedding: [V][rows] input terms of layer 0, or NULL */
} rs_layer;

typedef struct {
    int cell, L, V, E, O, state_len, max_cols, max_rows;
    int8_t *emb;
    rs_layer *layers;
    rs_mat dec;
    int32_t *dec_b;
    float *dec_scale;
    int8_t *xbuf, *hbuf, *ybuf; /* padded int8 codes */
    uint8_t *ubuf;              /* x ^ 0x80 (VNNI) */
    int32_t *ax, *ah, *pre, *acc;
} rs_model;

/* ---- memory ------------------------------------------------------------------------- */
static void *rs_alloc(size_t n) { /* 64-byte aligned, zeroed; freed with rs_release */
    unsigned char *raw = (unsigned char *)calloc(n + 64 + sizeof(void *), 1), *p;
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (64 - ((uintptr_t)p & 63)) & 63;
    ((void **)p)[-1] = raw;
    return p;
}
static void rs_release(void *p) { if (p) free(((void **)p)[-1]); }
static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* ---- fixed point (fixedpoint.py) ------------------------------------------------------ */
static inline int64_t requant(int64_t a, int32_t m, int n) {
    return (a * (int64_t)m + ((int64_t)1 << (n - 1))) >> n;
}
static inline int32_t clamp32(int64_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : (int32_t)v); }
static inline int32_t term(int32_t acc, int32_t m, int n) { return clamp32(requant(acc, m, n), -PRE_SAT, PRE_SAT); }
static inline int32_t rshr(int32_t v, int n) { return n == 0 ? v : (v + (1 << (n - 1))) >> n; }
static inline int64_t rshr64(int64_t v, int n) { return n == 0 ? v : (v + ((int64_t)1 << (n - 1))) >> n; }
static inline int32_t lut(const int16_t *t, int32_t p) {
    int32_t u, k, fr, lo, hi;
    if (p < LUT_LO) p = LUT_LO;
    if (p > LUT_HI) p = LUT_HI;
    u = p - LUT_LO;
    k = u >> 7;
    fr = u & 127;
    lo = t[k];
    hi = t[k + 1];
    return lo + (((hi - lo) * fr + 64) >> 7);
}

/* ---- packed int8 matrix x vector ------------------------------------------------------ */
static int mat_pack(rs_mat *m, const int8_t *w, int rows, int cols) {
    int KG, r, k;
    m->rows = rows;
    m->cols = cols;
    m->rows_p = round_up(rows, RB);
    m->cols_p = round_up(cols > 0 ? cols : 1, KB);
    KG = m->cols_p / KB;
    m->w = (int8_t *)rs_alloc((size_t)m->rows_p * m->cols_p);
    m->corr = (int32_t *)rs_alloc(sizeof(int32_t) * m->rows_p);
    if (!m->w || !m->corr) return -1;
    for (r = 0; r < rows; r++) {
        int32_t s = 0;
        for (k = 0; k < cols; k++) {
            int8_t v = w[(size_t)r * cols + k];
            m->w[(((size_t)(r / RB) * KG + k / KB) * RB + r % RB) * KB + k % KB] = v;
            s += v;
        }
        m->corr[r] = 128 * s;
    }
    return 0;
}
static void mat_free(rs_mat *m) { rs_release(m->w); rs_release(m->corr); }

static inline int32_t load4(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* y[0:rows_p] = W x; x holds cols_p int8 codes (zero padded), u = x ^ 0x80 */
static void matvec(const rs_mat *m, const int8_t *x, const uint8_t *u, int32_t *y) {
    const int KG = m->cols_p / KB, NB = m->rows_p / RB;
    const size_t bs = (size_t)KG * RB * KB; /* bytes per row block */
    int b = 0, kg;
#if RS_SIMD == 3
    (void)x;
    for (; b + 4 <= NB; b += 4) {
        const int8_t *p = m->w + b * bs;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (kg = 0; kg < KG; kg++) {
            const __m512i xb = _mm512_set1_epi32(load4(u + 4 * kg));
            const int8_t *q = p + (size_t)kg * 64;
            a0 = _mm512_dpbusd_epi32(a0, xb, _mm512_load_si512((const void *)q));
            a1 = _mm512_dpbusd_epi32(a1, xb, _mm512_load_si512((const void *)(q + bs)));
            a2 = _mm512_dpbusd_epi32(a2, xb, _mm512_load_si512((const void *)(q + 2 * bs)));
            a3 = _mm512_dpbusd_epi32(a3, xb, _mm512_load_si512((const void *)(q + 3 * bs)));
        }
        _mm512_storeu_si512((void *)(y + b * RB), _mm512_sub_epi32(a0, _mm512_loadu_si512((const void *)(m->corr + b * RB))));
        _mm512_storeu_si512((void *)(y + (b + 1) * RB), _mm512_sub_epi32(a1, _mm512_loadu_si512((const void *)(m->corr + (b + 1) * RB))));
        _mm512_storeu_si512((void *)(y + (b + 2) * RB), _mm512_sub_epi32(a2, _mm512_loadu_si512((const void *)(m->corr + (b + 2) * RB))));
        _mm512_storeu_si512((void *)(y + (b + 3) * RB), _mm512_sub_epi32(a3, _mm512_loadu_si512((const void *)(m->corr + (b + 3) * RB))));
    }
    for (; b < NB; b++) {
        const int8_t *p = m->w + b * bs;
        __m512i a0 = _mm512_setzero_si512();
        for (kg = 0; kg < KG; kg++)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(load4(u + 4 * kg)), _mm512_load_si512((const void *)(p + (size_t)kg * 64)));
        _mm512_storeu_si512((void *)(y + b * RB), _mm512_sub_epi32(a0, _mm512_loadu_si512((const void *)(m->corr + b * RB))));
    }
#elif RS_SIMD == 2
    const __m256i ones = _mm256_set1_epi16(1);
    (void)u;
    for (; b + 2 <= NB; b += 2) {
        const int8_t *p = m->w + b * bs;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (kg = 0; kg < KG; kg++) {
            const __m256i xb = _mm256_set1_epi32(load4(x + 4 * kg));
            const __m256i ax = _mm256_sign_epi8(xb, xb);
            const int8_t *q = p + (size_t)kg * 64;
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)q), xb)), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(q + 32)), xb)), ones));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(q + bs)), xb)), ones));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(q + bs + 32)), xb)), ones));
        }
        _mm256_storeu_si256((__m256i *)(y + b * RB), a0);
        _mm256_storeu_si256((__m256i *)(y + b * RB + 8), a1);
        _mm256_storeu_si256((__m256i *)(y + (b + 1) * RB), a2);
        _mm256_storeu_si256((__m256i *)(y + (b + 1) * RB + 8), a3);
    }
    for (; b < NB; b++) {
        const int8_t *p = m->w + b * bs;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        for (kg = 0; kg < KG; kg++) {
            const __m256i xb = _mm256_set1_epi32(load4(x + 4 * kg));
            const __m256i ax = _mm256_sign_epi8(xb, xb);
            const int8_t *q = p + (size_t)kg * 64;
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)q), xb)), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(q + 32)), xb)), ones));
        }
        _mm256_storeu_si256((__m256i *)(y + b * RB), a0);
        _mm256_storeu_si256((__m256i *)(y + b * RB + 8), a1);
    }
#else
    (void)u;
    for (; b < NB; b++) {
        const int8_t *p = m->w + b * bs;
        int32_t a[RB];
        int r, q;
        for (r = 0; r < RB; r++) a[r] = 0;
        for (kg = 0; kg < KG; kg++) {
            const int8_t *xs = x + kg * KB, *ws = p + (size_t)kg * RB * KB;
            for (r = 0; r < RB; r++)
                for (q = 0; q < KB; q++) a[r] += (int32_t)ws[r * KB + q] * (int32_t)xs[q];
        }
        for (r = 0; r < RB; r++) y[b * RB + r] = a[r];
    }
#endif
}

/* copy n int8 codes into a padded buffer (zeros up to cols_p) and its unsigned twin */
static void load_codes(int8_t *dst, uint8_t *u, const int8_t *src, int n, int cols_p) {
    int k;
    if (dst != src) memcpy(dst, src, (size_t)n);
    memset(dst + n, 0, (size_t)(cols_p - n));
    for (k = 0; k < cols_p; k++) u[k] = (uint8_t)dst[k] ^ 0x80;
}

/* ---- construction (called once from kernel.py) ----------------------------------------- */
void rs_free(rs_model *m) {
    int l;
    if (!m) return;
    if (m->layers) {
        for (l = 0; l < m->L; l++) {
            rs_layer *ly = &m->layers[l];
            mat_free(&ly->wx);
            mat_free(&ly->wh);
            rs_release(ly->mult_x); rs_release(ly->mult_h); rs_release(ly->bias);
            rs_release(ly->shift_x); rs_release(ly->shift_h); rs_release(ly->tx_table);
        }
        free(m->layers);
    }
    mat_free(&m->dec);
    rs_release(m->emb); rs_release(m->dec_b); rs_release(m->dec_scale);
    rs_release(m->xbuf); rs_release(m->hbuf); rs_release(m->ybuf); rs_release(m->ubuf);
    rs_release(m->ax); rs_release(m->ah); rs_release(m->pre); rs_release(m->acc);
    free(m);
}

rs_model *rs_new(int cell, int L, int V, int E, int O) {
    rs_model *m;
    if (cell < CELL_LSTM || cell > CELL_RNN || L < 1 || V < 1 || E < 1 || O < 1) return NULL;
    m = (rs_model *)calloc(1, sizeof(rs_model));
    if (!m) return NULL;
    m->cell = cell; m->L = L; m->V = V; m->E = E; m->O = O;
    m->layers = (rs_layer *)calloc((size_t)L, sizeof(rs_layer));
    m->emb = (int8_t *)rs_alloc((size_t)V * E);
    if (!m->layers || !m->emb) { rs_free(m); return NULL; }
    return m;
}

int rs_simd_level(void) { return RS_SIMD; }

void rs_set_embedding(rs_model *m, const int8_t *emb) { memcpy(m->emb, emb, (size_t)m->V * m->E); }

static void *dup(const void *src, size_t n) {
    void *p = rs_alloc(n);
    if (p) memcpy(p, src, n);
    return p;
}

int rs_set_layer(rs_model *m, int l, int input, int hidden, const int8_t *w_ih, const int8_t *w_hh,
                 const int32_t *mult_ih, const int8_t *shift_ih, const int32_t *mult_hh, const int8_t *shift_hh,
                 const int32_t *bias, int32_t h_mult, int h_shift, int cf, const int16_t *sig, const int16_t *tanh_) {
    rs_layer *ly;
    int G = m->cell == CELL_LSTM ? 4 : (m->cell == CELL_GRU ? 3 : 1), nb;
    if (l < 0 || l >= m->L || input < 1 || hidden < 1 || cf < 0 || cf > 15 || h_shift < 1 || h_shift > 62) return -2;
    ly = &m->layers[l];
    ly->input = input; ly->hidden = hidden; ly->rows = G * hidden;
    nb = m->cell == CELL_RNN ? hidden : 4 * hidden;
    if (mat_pack(&ly->wx, w_ih, ly->rows, input) || mat_pack(&ly->wh, w_hh, ly->rows, hidden)) return -1;
    ly->mult_x = (int32_t *)dup(mult_ih, sizeof(int32_t) * ly->rows);
    ly->mult_h = (int32_t *)dup(mult_hh, sizeof(int32_t) * ly->rows);
    ly->shift_x = (int8_t *)dup(shift_ih, (size_t)ly->rows);
    ly->shift_h = (int8_t *)dup(shift_hh, (size_t)ly->rows);
    ly->bias = (int32_t *)dup(bias, sizeof(int32_t) * nb);
    if (!ly->mult_x || !ly->mult_h || !ly->shift_x || !ly->shift_h || !ly->bias) return -1;
    ly->h_mult = h_mult; ly->h_shift = h_shift; ly->cf = cf;
    memcpy(ly->sig, sig, sizeof(ly->sig));
    memcpy(ly->tanh_, tanh_, sizeof(ly->tanh_));
    return 0;
}

int rs_set_decoder(rs_model *m, int input, const int8_t *w, const int32_t *b, const float *scale) {
    if (mat_pack(&m->dec, w, m->O, input)) return -1;
    m->dec_b = (int32_t *)dup(b, sizeof(int32_t) * m->O);
    m->dec_scale = (float *)dup(scale, sizeof(float) * m->O);
    return (m->dec_b && m->dec_scale) ? 0 : -1;
}

/* check shapes, allocate scratch, optionally fold embedding x W_ih of layer 0 into a table */
int rs_finalize(rs_model *m, int fold_embedding) {
    int l, v, j, in = m->E;
    m->state_len = 0; m->max_cols = KB; m->max_rows = RB;
    for (l = 0; l < m->L; l++) {
        rs_layer *ly = &m->layers[l];
        if (!ly->wx.w || ly->input != in) return -2;
        m->state_len += (m->cell == CELL_LSTM ? 2 : 1) * ly->hidden;
        if (ly->wx.cols_p > m->max_cols) m->max_cols = ly->wx.cols_p;
        if (ly->wh.cols_p > m->max_cols) m->max_cols = ly->wh.cols_p;
        if (ly->wx.rows_p > m->max_rows) m->max_rows = ly->wx.rows_p;
        in = ly->hidden;
    }
    if (!m->dec.w || m->dec.cols != in) return -2;
    if (m->dec.cols_p > m->max_cols) m->max_cols = m->dec.cols_p;
    if (m->dec.rows_p > m->max_rows) m->max_rows = m->dec.rows_p;
    m->xbuf = (int8_t *)rs_alloc((size_t)m->max_cols);
    m->hbuf = (int8_t *)rs_alloc((size_t)m->max_cols);
    m->ybuf = (int8_t *)rs_alloc((size_t)m->max_cols);
    m->ubuf = (uint8_t *)rs_alloc((size_t)m->max_cols);
    m->ax = (int32_t *)rs_alloc(sizeof(int32_t) * m->max_rows);
    m->ah = (int32_t *)rs_alloc(sizeof(int32_t) * m->max_rows);
    m->pre = (int32_t *)rs_alloc(sizeof(int32_t) * m->max_rows);
    m->acc = (int32_t *)rs_alloc(sizeof(int32_t) * m->max_rows);
    if (!m->xbuf || !m->hbuf || !m->ybuf || !m->ubuf || !m->ax || !m->ah || !m->pre || !m->acc) return -1;
    if (fold_embedding) {
        rs_layer *ly = &m->layers[0];
        ly->tx_table = (int32_t *)rs_alloc(sizeof(int32_t) * (size_t)m->V * ly->rows);
        if (!ly->tx_table) return -1;
        for (v = 0; v < m->V; v++) {
            load_codes(m->xbuf, m->ubuf, m->emb + (size_t)v * m->E, m->E, ly->wx.cols_p);
            matvec(&ly->wx, m->xbuf, m->ubuf, m->ax);
            for (j = 0; j < ly->rows; j++)
                ly->tx_table[(size_t)v * ly->rows + j] = term(m->ax[j], ly->mult_x[j], ly->shift_x[j]);
        }
    }
    return 0;
}

int rs_state_len(const rs_model *m) { return m->state_len; }

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
/* one 32-bit gather at byte offset 2k fetches T[k] (low half) and T[k+1] (high half) */
static inline __m512i v_lut(const int16_t *t, __m512i p) {
    const __m512i u = _mm512_sub_epi32(v_clamp(p, LUT_LO, LUT_HI), V512(LUT_LO));
    const __m512i k = _mm512_srli_epi32(u, 7), fr = _mm512_and_si512(u, V512(127));
    const __m512i pair = _mm512_i32gather_epi32(k, (const void *)t, 2);
    const __m512i lo = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), hi = _mm512_srai_epi32(pair, 16);
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

/* input terms tx (Q.12) of one layer for input codes x (or the folded table row) */
static const int32_t *input_terms(rs_model *m, const rs_layer *ly, const int8_t *x, int token) {
    if (ly->tx_table) return ly->tx_table + (size_t)token * ly->rows;
    load_codes(m->xbuf, m->ubuf, x, ly->input, ly->wx.cols_p);
    matvec(&ly->wx, m->xbuf, m->ubuf, m->ax);
    terms(m->ax, ly->mult_x, ly->shift_x, ly->rows);
    return m->ax;
}

static void recurrent_terms(rs_model *m, const rs_layer *ly) {
    load_codes(m->hbuf, m->ubuf, m->hbuf, ly->hidden, ly->wh.cols_p);
    matvec(&ly->wh, m->hbuf, m->ubuf, m->ah);
    terms(m->ah, ly->mult_h, ly->shift_h, ly->rows);
}

static void lstm_layer(rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y) {
    const int H = ly->hidden, cf = ly->cf;
    int16_t *hs = st, *cs = st + H;
    const int32_t *tx;
    int32_t *pre = m->pre;
    int k, j;
    tx = input_terms(m, ly, x, token);
    for (k = 0; k < H; k++) m->hbuf[k] = (int8_t)hs[k];
    recurrent_terms(m, ly);
    for (j = 0; j < ly->rows; j++) pre[j] = tx[j] + m->ah[j] + ly->bias[j];
    k = 0;
#if RS_SIMD == 3
    {
        const __m512i hm = V512(ly->h_mult), hsh = V512(ly->h_shift);
        for (; k + 16 <= H; k += 16) {
            const __m512i i = v_lut(ly->sig, v_load(pre + k)), f = v_lut(ly->sig, v_load(pre + H + k));
            const __m512i g = v_lut(ly->tanh_, v_load(pre + 2 * H + k)), o = v_lut(ly->sig, v_load(pre + 3 * H + k));
            const __m512i c = v_clamp(_mm512_add_epi32(v_rshr(_mm512_mullo_epi32(f, v_load16(cs + k)), 15),
                                                       v_rshr(_mm512_mullo_epi32(i, g), 30 - cf)), -32768, 32767);
            const __m512i c12 = cf >= 12 ? v_rshr(c, cf - 12) : _mm512_sll_epi32(c, _mm_cvtsi32_si128(12 - cf));
            const __m512i h8 = v_requant(_mm512_mullo_epi32(o, v_lut(ly->tanh_, c12)), hm, hsh, -Q8_MAX, Q8_MAX);
            v_store16(cs + k, c);
            v_store16(hs + k, h8);
            v_store8(y + k, h8);
        }
    }
#endif
    for (; k < H; k++) {
        const int32_t i = lut(ly->sig, pre[k]), f = lut(ly->sig, pre[H + k]);
        const int32_t g = lut(ly->tanh_, pre[2 * H + k]), o = lut(ly->sig, pre[3 * H + k]);
        const int32_t c = clamp32(rshr(f * (int32_t)cs[k], 15) + rshr(i * g, 30 - cf), -32768, 32767);
        const int32_t c12 = cf >= 12 ? rshr(c, cf - 12) : c * (1 << (12 - cf));
        const int32_t h8 = clamp32(requant((int64_t)o * lut(ly->tanh_, c12), ly->h_mult, ly->h_shift), -Q8_MAX, Q8_MAX);
        cs[k] = (int16_t)c;
        hs[k] = (int16_t)h8;
        y[k] = (int8_t)h8;
    }
}

static void gru_layer(rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y) {
    const int H = ly->hidden;
    const int32_t *tx, *b = ly->bias, *ah = m->ah;
    int k;
    tx = input_terms(m, ly, x, token);
    h8_codes(m->hbuf, st, ly, H);
    recurrent_terms(m, ly);
    k = 0;
#if RS_SIMD == 3
    for (; k + 16 <= H; k += 16) {
        const __m512i r = v_lut(ly->sig, _mm512_add_epi32(_mm512_add_epi32(v_load(tx + k), v_load(ah + k)), v_load(b + k)));
        const __m512i z = v_lut(ly->sig, _mm512_add_epi32(_mm512_add_epi32(v_load(tx + H + k), v_load(ah + H + k)), v_load(b + H + k)));
        const __m512i hn = _mm512_add_epi32(v_load(ah + 2 * H + k), v_load(b + 3 * H + k));
        const __m512i n = v_lut(ly->tanh_, _mm512_add_epi32(_mm512_add_epi32(v_load(tx + 2 * H + k), v_load(b + 2 * H + k)),
                                                            v_mul_rshr15(r, hn)));
        const __m512i h16 = v_clamp(_mm512_add_epi32(n, v_rshr(_mm512_mullo_epi32(z, _mm512_sub_epi32(v_load16(st + k), n)), 15)),
                                    -32767, 32767);
        v_store16(st + k, h16);
        v_store8(y + k, v_requant(h16, V512(ly->h_mult), V512(ly->h_shift), -Q8_MAX, Q8_MAX));
    }
#endif
    for (; k < H; k++) {
        const int32_t r = lut(ly->sig, tx[k] + ah[k] + b[k]);
        const int32_t z = lut(ly->sig, tx[H + k] + ah[H + k] + b[H + k]);
        const int32_t hn = ah[2 * H + k] + b[3 * H + k];
        const int32_t n = lut(ly->tanh_, tx[2 * H + k] + b[2 * H + k] + (int32_t)rshr64((int64_t)r * hn, 15));
        const int32_t h16 = clamp32(n + rshr(z * ((int32_t)st[k] - n), 15), -32767, 32767);
        st[k] = (int16_t)h16;
        y[k] = (int8_t)h8_of(h16, ly);
    }
}

static void rnn_layer(rs_model *m, const rs_layer *ly, const int8_t *x, int token, int16_t *st, int8_t *y) {
    const int H = ly->hidden;
    const int32_t *tx, *ah = m->ah, *b = ly->bias;
    int k;
    tx = input_terms(m, ly, x, token);
    h8_codes(m->hbuf, st, ly, H);
    recurrent_terms(m, ly);
    k = 0;
#if RS_SIMD == 3
    for (; k + 16 <= H; k += 16) {
        const __m512i h16 = v_lut(ly->tanh_, _mm512_add_epi32(_mm512_add_epi32(v_load(tx + k), v_load(ah + k)), v_load(b + k)));
        v_store16(st + k, h16);
        v_store8(y + k, v_requant(h16, V512(ly->h_mult), V512(ly->h_shift), -Q8_MAX, Q8_MAX));
    }
#endif
    for (; k < H; k++) {
        const int32_t h16 = lut(ly->tanh_, tx[k] + ah[k] + b[k]);
        st[k] = (int16_t)h16;
        y[k] = (int8_t)h8_of(h16, ly);
    }
}

/* one token: state (state_len int16, layout per layer: LSTM [h8 | c], GRU/RNN [h16]) is
   updated in place; logits[O] = float(acc + bias) * scale. Returns 0, or -1 for a bad token. */
int rs_step(rs_model *m, int64_t token, int16_t *state, float *logits) {
    const int8_t *x;
    int l, j;
    if (token < 0 || token >= m->V) return -1;
    x = m->emb + (size_t)token * m->E;
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &m->layers[l];
        /* y is written to ybuf; the next layer copies it into xbuf before overwriting ybuf */
        if (m->cell == CELL_LSTM) lstm_layer(m, ly, x, (int)token, state, m->ybuf);
        else if (m->cell == CELL_GRU) gru_layer(m, ly, x, (int)token, state, m->ybuf);
        else rnn_layer(m, ly, x, (int)token, state, m->ybuf);
        state += (m->cell == CELL_LSTM ? 2 : 1) * ly->hidden;
        x = m->ybuf;
    }
    load_codes(m->hbuf, m->ubuf, x, m->dec.cols, m->dec.cols_p);
    matvec(&m->dec, m->hbuf, m->ubuf, m->acc);
    for (j = 0; j < m->O; j++) logits[j] = (float)(m->acc[j] + m->dec_b[j]) * m->dec_scale[j];
    return 0;
}

/* n tokens in a row; logits is [n][O]. Returns the index of the first bad token + 1, or 0. */
int rs_run(rs_model *m, const int64_t *tokens, int n, int16_t *state, float *logits) {
    int t;
    for (t = 0; t < n; t++)
        if (rs_step(m, tokens[t], state, logits + (size_t)t * m->O)) return t + 1;
    return 0;
}
