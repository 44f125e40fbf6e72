/*
 * rnnslim host kernel: the integer step of rnnslim_core.h behind a small C API that
 * kernel.py loads with ctypes (IntegerRunner). The model's arrays arrive already packed
 * (packed.py: the same arrays an exported C model holds as constants) and are copied
 * into 64-byte aligned memory owned by the handle.
 */
#include <stdlib.h>
#define RS_FULL_TABLES /* whole sigmoid / tanh tables (IntegerRunner passes them): no mirroring per lookup */
#include "rnnslim_core.h"

typedef struct {
    rs_model m;
    rs_layer *layers; /* writable view of m.layers while the model is being built */
    rs_layer *rev;    /* [L] backward directions (used by the layers whose .rev points here) */
    int bidir;        /* some layer is bidirectional or the input is windowed: whole sequences only (rs_run_sequence) */
    void *owned[64 + 32 * 32];
    int n_owned;
} rs_host;

static void *host_copy(rs_host *h, const void *src, size_t n) { /* 64-byte aligned copy, freed with the handle */
    unsigned char *raw, *p;
    if (h->n_owned >= (int)(sizeof(h->owned) / sizeof(h->owned[0]))) return NULL;
    raw = (unsigned char *)calloc(n + 64 + sizeof(void *), 1);
    if (!raw) return NULL;
    h->owned[h->n_owned++] = raw;
    p = raw + sizeof(void *);
    p += (64 - ((uintptr_t)p & 63)) & 63;
    if (src) memcpy(p, src, n);
    return p;
}

void rs_free(rs_host *h) {
    int i;
    if (!h) return;
    for (i = 0; i < h->n_owned; i++) free(h->owned[i]);
    free(h->layers);
    free(h->rev);
    free(h);
}

rs_host *rs_new(int cell, int L, int V, int E, int O) {
    rs_host *h;
    if (cell < CELL_LSTM || cell > CELL_RNN || L < 1 || L > 32 || V < 0 || E < 1 || O < 1) return NULL;
    h = (rs_host *)calloc(1, sizeof(rs_host));
    if (!h) return NULL;
    h->layers = (rs_layer *)calloc((size_t)L, sizeof(rs_layer));
    h->rev = (rs_layer *)calloc((size_t)L, sizeof(rs_layer));
    if (!h->layers || !h->rev) { free(h->layers); free(h->rev); free(h); return NULL; }
    h->m.cell = cell; h->m.L = L; h->m.V = V; h->m.E = E; h->m.O = O;
    h->m.layers = h->layers;
    return h;
}

int rs_simd_level(void) { return RS_SIMD; }

/* 1 when this build runs the panels format (N:M) faster than its dense product, so the packer's
   "auto" may pick it: AVX512-VBMI (one vpermb per panel) and the portable C loop; an AVX2-only or
   AVX512-without-VBMI build gathers bytes one by one and measured 0.84x at 1:4 (packed.py) */
int rs_panels_fast(void) {
#if defined(__AVX512VBMI__) || RS_SIMD == 0
    return 1;
#else
    return 0;
#endif
}

int rs_set_embedding(rs_host *h, const int8_t *emb) {
    h->m.emb = (const int8_t *)host_copy(h, emb, (size_t)h->m.V * h->m.E);
    return h->m.emb ? 0 : -1;
}

/* a tied embedding: the lookup reads the decoder's table (rs_token_codes); no copy of its own */
int rs_set_embedding_tied(rs_host *h) {
    h->m.emb_tied = 1;
    return 0;
}

/* slot 2l = W_ih of layer l, 2l + 1 = W_hh, 2L = decoder, 2L + 1 = input projection, 2L + 2 + 2l =
   W_ih of the backward direction of layer l, 2L + 3 + 2l = its W_hh; NULL for a slot outside these */
static rs_mat *host_matrix(rs_host *h, int slot) {
    const int L = h->m.L;
    if (slot < 0 || slot > 4 * L + 1) return NULL;
    if (slot >= 2 * L + 2) return slot % 2 ? &h->rev[(slot - 2 * L - 2) / 2].wh : &h->rev[(slot - 2 * L - 2) / 2].wx;
    if (slot == 2 * L + 1) return &h->m.in.w;
    return slot == 2 * L ? &h->m.dec : (slot % 2 ? &h->layers[slot / 2].wh : &h->layers[slot / 2].wx);
}

/* n_tiles >= 0: tile-sparse, -1: dense, RS_NM24_TILES (-2): 2:4 values ([rows_p][cols_p / 2]),
   whose index bytes come from rs_set_matrix_nm24 */
#define RS_NM24_TILES (-2)
int rs_set_matrix(rs_host *h, int slot, int rows, int cols, const int8_t *w, const int32_t *corr,
                  const int32_t *tile_ptr, const uint16_t *tile_col, int n_tiles) {
    rs_mat *mt = host_matrix(h, slot);
    int rows_p = (rows + RB - 1) / RB * RB, cols_p = (cols + KB - 1) / KB * KB, nb = rows_p / RB;
    size_t wbytes = n_tiles == RS_NM24_TILES ? (size_t)rows_p * cols_p / 2
                    : (n_tiles < 0 ? (size_t)rows_p * cols_p : (size_t)n_tiles * RB * KB);
    if (!mt || rows < 1 || cols < 1 || n_tiles < RS_NM24_TILES) return -2;
    mt->rows = rows; mt->cols = cols; mt->rows_p = rows_p; mt->cols_p = cols_p;
    mt->w = (const int8_t *)host_copy(h, w, wbytes > 0 ? wbytes : 1);
    mt->corr = (const int32_t *)host_copy(h, corr, sizeof(int32_t) * rows_p);
    mt->tile_ptr = NULL; mt->tile_col = NULL; mt->nm_idx = NULL; mt->strip_ptr = NULL; mt->strip_idx = NULL;
    mt->panel_ptr = NULL; mt->panel_idx = NULL;
    if (n_tiles >= 0) {
        int b;
        if (tile_ptr[0] != 0 || tile_ptr[nb] != n_tiles) return -2;
        for (b = 0; b < nb; b++)
            if (tile_ptr[b + 1] < tile_ptr[b]) return -2;
        for (b = 0; b < n_tiles; b++)
            if (tile_col[b] >= cols_p / KB) return -2;
        mt->tile_ptr = (const int32_t *)host_copy(h, tile_ptr, sizeof(int32_t) * (nb + 1));
        mt->tile_col = (const uint16_t *)host_copy(h, tile_col, sizeof(uint16_t) * (n_tiles > 0 ? n_tiles : 1));
        if (!mt->tile_ptr || !mt->tile_col) return -1;
    }
    return mt->w && mt->corr ? 0 : -1;
}

/* A 2:4 matrix (rs_mat.nm_idx): values w [rows_p][cols_p / 2], index bytes idx [rows_p][rs_nm24_idx_cols] */
int rs_set_matrix_nm24(rs_host *h, int slot, int rows, int cols, const int8_t *w, const int32_t *corr,
                       const uint8_t *idx) {
    rs_mat *mt;
    int rc = rs_set_matrix(h, slot, rows, cols, w, corr, NULL, NULL, RS_NM24_TILES);
    if (rc) return rc;
    mt = host_matrix(h, slot);
    mt->nm_idx = (const uint8_t *)host_copy(h, idx, (size_t)mt->rows_p * (size_t)rs_nm24_idx_cols(mt));
    return mt->nm_idx ? 0 : -1;
}

/* A strips matrix (strips.py, rs_mat.strip_ptr): n_tiles tiles w [n_tiles][16][4], pointers
   ptr [rows_p / 16 * NP + 1] (NP = ceil(cols_p / 64) panels), column offsets idx [n_tiles * 4] < 64
   inside the panel and the matrix (checked here: the step trusts them) */
int rs_set_matrix_strips(rs_host *h, int slot, int rows, int cols, const int8_t *w, const int32_t *corr,
                         const int32_t *ptr, const uint8_t *idx, int n_tiles) {
    rs_mat *mt = host_matrix(h, slot);
    int rows_p = (rows + RB - 1) / RB * RB, cols_p = (cols + KB - 1) / KB * KB, np_ = (cols_p + RS_PANEL - 1) / RS_PANEL;
    int nbp = rows_p / RB * np_, i, t;
    if (!mt || rows < 1 || cols < 1 || n_tiles < 0 || ptr[0] != 0 || ptr[nbp] != n_tiles) return -2;
    for (i = 0; i < nbp; i++) {
        if (ptr[i + 1] < ptr[i] || 4 * (ptr[i + 1] - ptr[i]) > RS_PANEL) return -2;
        for (t = 4 * ptr[i]; t < 4 * ptr[i + 1]; t++)
            if (idx[t] >= RS_PANEL || (i % np_) * RS_PANEL + idx[t] >= cols_p) return -2;
    }
    mt->rows = rows; mt->cols = cols; mt->rows_p = rows_p; mt->cols_p = cols_p;
    mt->tile_ptr = NULL; mt->tile_col = NULL; mt->nm_idx = NULL; mt->panel_ptr = NULL; mt->panel_idx = NULL;
    mt->w = (const int8_t *)host_copy(h, w, (size_t)(n_tiles > 0 ? n_tiles : 1) * RB * KB);
    mt->corr = (const int32_t *)host_copy(h, corr, sizeof(int32_t) * (size_t)rows_p);
    mt->strip_ptr = (const int32_t *)host_copy(h, ptr, sizeof(int32_t) * (size_t)(nbp + 1));
    mt->strip_idx = (const uint8_t *)host_copy(h, idx, (size_t)(n_tiles > 0 ? 4 * n_tiles : 1));
    return mt->w && mt->corr && mt->strip_ptr && mt->strip_idx ? 0 : -1;
}

/* A panels matrix (panels.py, rs_mat.panel_ptr): n_groups groups of 64 codes w and 64 column offsets idx
   (lane r holds 4 of each), pointers ptr [rows_p / 16 * NP + 1] (at most 16 groups per (block, panel)), every
   offset < 64 and inside the matrix (checked here: the step trusts them) */
int rs_set_matrix_panels(rs_host *h, int slot, int rows, int cols, const int8_t *w, const int32_t *corr,
                         const int32_t *ptr, const uint8_t *idx, int n_groups) {
    rs_mat *mt = host_matrix(h, slot);
    int rows_p = (rows + RB - 1) / RB * RB, cols_p = (cols + KB - 1) / KB * KB, np_ = (cols_p + RS_PANEL_COLS - 1) / RS_PANEL_COLS;
    int nbp = rows_p / RB * np_, i;
    size_t t;
    if (!mt || rows < 1 || cols < 1 || n_groups < 0 || ptr[0] != 0 || ptr[nbp] != n_groups) return -2;
    for (i = 0; i < nbp; i++) {
        if (ptr[i + 1] < ptr[i] || 4 * (ptr[i + 1] - ptr[i]) > RS_PANEL_COLS) return -2;
        for (t = 64 * (size_t)ptr[i]; t < 64 * (size_t)ptr[i + 1]; t++)
            if (idx[t] >= RS_PANEL_COLS || (i % np_) * RS_PANEL_COLS + idx[t] >= cols_p) return -2;
    }
    mt->rows = rows; mt->cols = cols; mt->rows_p = rows_p; mt->cols_p = cols_p;
    mt->tile_ptr = NULL; mt->tile_col = NULL; mt->nm_idx = NULL; mt->strip_ptr = NULL; mt->strip_idx = NULL;
    mt->corr = (const int32_t *)host_copy(h, corr, sizeof(int32_t) * (size_t)rows_p);
    mt->w = (const int8_t *)host_copy(h, w, (size_t)(n_groups > 0 ? n_groups : 1) * RB * KB);
    mt->panel_ptr = (const int32_t *)host_copy(h, ptr, sizeof(int32_t) * (size_t)(nbp + 1));
    mt->panel_idx = (const uint8_t *)host_copy(h, idx, (size_t)(n_groups > 0 ? n_groups : 1) * RB * KB);
    return mt->w && mt->corr && mt->panel_ptr && mt->panel_idx ? 0 : -1;
}

int rs_set_layer(rs_host *h, int l, int input, int hidden, const int32_t *mult_ih, const int8_t *shift_ih,
                 const int32_t *mult_hh, const int8_t *shift_hh, const int32_t *bias, int32_t h_mult, int h_shift,
                 int cf, const int16_t *sig, const int16_t *tanh_, const int32_t *tx_table) {
    rs_layer *ly;
    int G = h->m.cell == CELL_LSTM ? 4 : (h->m.cell == CELL_GRU ? 3 : 1), nb;
    if (l < 0 || l >= h->m.L || input < 1 || hidden < 1 || cf < 0 || cf > 15 || h_shift < 1 || h_shift > 62) return -2;
    ly = &h->layers[l];
    ly->input = input; ly->hidden = hidden; ly->rows = G * hidden;
    nb = h->m.cell == CELL_RNN ? hidden : 4 * hidden;
    ly->mult_x = (const int32_t *)host_copy(h, mult_ih, sizeof(int32_t) * ly->rows);
    ly->mult_h = (const int32_t *)host_copy(h, mult_hh, sizeof(int32_t) * ly->rows);
    ly->shift_x = (const int8_t *)host_copy(h, shift_ih, (size_t)ly->rows);
    ly->shift_h = (const int8_t *)host_copy(h, shift_hh, (size_t)ly->rows);
    ly->bias = (const int32_t *)host_copy(h, bias, sizeof(int32_t) * nb);
    ly->sig = (const int16_t *)host_copy(h, sig, sizeof(int16_t) * LUT_SIZE);
    ly->tanh_ = (const int16_t *)host_copy(h, tanh_, sizeof(int16_t) * LUT_SIZE);
    if (tx_table) {
        if (l != 0) return -2;
        ly->tx_table = (const int32_t *)host_copy(h, tx_table, sizeof(int32_t) * (size_t)h->m.V * ly->rows);
        if (!ly->tx_table) return -1;
    }
    if (!ly->mult_x || !ly->mult_h || !ly->shift_x || !ly->shift_h || !ly->bias || !ly->sig || !ly->tanh_) return -1;
    ly->h_mult = h_mult; ly->h_shift = h_shift; ly->cf = cf;
    return 0;
}

/* delta step of layer l (after rs_set_layer(l)): threshold and the column-blocked copies of W_ih
   (NULL: W_ih runs dense) and W_hh, rows_c x cols int8 (delta.pack_columns; rows_c = rows rounded up to RS_DROWS) */
int rs_set_delta(rs_host *h, int l, int32_t thr, const int8_t *wx_cols, const int8_t *wh_cols) {
    rs_layer *ly;
    size_t rc;
    if (l < 0 || l >= h->m.L || !h->layers[l].sig || thr < 0 || !wh_cols || h->layers[l].rev) return -2;
    ly = &h->layers[l];
    if (wx_cols && ly->tx_table) return -2;
    rc = (size_t)rs_rows_c(ly);
    ly->delta_thr = thr;
    ly->wh_cols = (const int8_t *)host_copy(h, wh_cols, rc * (size_t)ly->hidden);
    if (wx_cols) ly->wx_cols = (const int8_t *)host_copy(h, wx_cols, rc * (size_t)ly->input);
    return ly->wh_cols && (!wx_cols || ly->wx_cols) ? 0 : -1;
}

/* the backward direction of layer l (after rs_set_layer(l); its matrices go to slots 2L + 2 + 2l
   and 2L + 3 + 2l): its per-row constants, bias and (layer 0 folded) tx_table; the rest is layer l's */
int rs_set_reverse(rs_host *h, int l, const int32_t *mult_ih, const int8_t *shift_ih, const int32_t *mult_hh,
                   const int8_t *shift_hh, const int32_t *bias, const int32_t *tx_table) {
    rs_layer *f, *r;
    int nb;
    if (l < 0 || l >= h->m.L || !h->layers[l].sig) return -2;
    f = &h->layers[l];
    r = &h->rev[l];
    r->input = f->input; r->hidden = f->hidden; r->rows = f->rows;
    r->h_mult = f->h_mult; r->h_shift = f->h_shift; r->cf = f->cf; r->sig = f->sig; r->tanh_ = f->tanh_;
    nb = h->m.cell == CELL_RNN ? f->hidden : 4 * f->hidden;
    r->mult_x = (const int32_t *)host_copy(h, mult_ih, sizeof(int32_t) * r->rows);
    r->mult_h = (const int32_t *)host_copy(h, mult_hh, sizeof(int32_t) * r->rows);
    r->shift_x = (const int8_t *)host_copy(h, shift_ih, (size_t)r->rows);
    r->shift_h = (const int8_t *)host_copy(h, shift_hh, (size_t)r->rows);
    r->bias = (const int32_t *)host_copy(h, bias, sizeof(int32_t) * nb);
    if (tx_table) {
        if (l != 0) return -2;
        r->tx_table = (const int32_t *)host_copy(h, tx_table, sizeof(int32_t) * (size_t)h->m.V * r->rows);
        if (!r->tx_table) return -1;
    }
    if (!r->mult_x || !r->mult_h || !r->shift_x || !r->shift_h || !r->bias) return -1;
    f->rev = r;
    h->bidir = 1;
    return 0;
}

/* feature input: kind INPUT_IDENTITY or INPUT_LINEAR (then the matrix in slot 2L + 1 and
   bias / mult / shift per row of the projection) */
int rs_set_input(rs_host *h, int kind, int F, float in_scale, const int32_t *bias, const int32_t *mult,
                 const int8_t *shift) {
    rs_input *in = &h->m.in;
    if (kind < INPUT_EMBEDDING || kind > INPUT_LINEAR || F < 1 || !(in_scale > 0.0f)) return -2;
    in->kind = kind; in->F = F; in->in_scale = in_scale;
    in->window = 1; in->padding = 0; in->frame = F; in->act = NULL;
    if (kind == INPUT_LINEAR) {
        in->bias = (const int32_t *)host_copy(h, bias, sizeof(int32_t) * h->m.E);
        in->mult = (const int32_t *)host_copy(h, mult, sizeof(int32_t) * h->m.E);
        in->shift = (const int8_t *)host_copy(h, shift, (size_t)h->m.E);
        if (!in->bias || !in->mult || !in->shift) return -1;
    }
    return 0;
}

/* after rs_set_input (linear): a window of `window` frames with `padding` zero frames at both ends
   (F = window * frame; whole sequences only, see rs_input) and / or the activation table act[256]
   (NULL: none) on the projection's codes */
int rs_set_window(rs_host *h, int window, int padding, const int8_t *act) {
    rs_input *in = &h->m.in;
    if (in->kind != INPUT_LINEAR || window < 1 || padding < 0 || in->F % window) return -2;
    in->window = window; in->padding = padding; in->frame = in->F / window;
    if (act) {
        in->act = (const int8_t *)host_copy(h, act, 256);
        if (!in->act) return -1;
    }
    if (window > 1 || padding > 0) h->bidir = 1; /* whole sequences only, like a bidirectional model */
    return 0;
}

int rs_set_decoder(rs_host *h, const int32_t *b, const float *scale) {
    h->m.dec_b = (const int32_t *)host_copy(h, b, sizeof(int32_t) * h->m.O);
    h->m.dec_scale = (const float *)host_copy(h, scale, sizeof(float) * h->m.O);
    return (h->m.dec_b && h->m.dec_scale) ? 0 : -1;
}

/* check that the shapes chain and allocate the scratch buffers */
int rs_finalize(rs_host *h) {
    rs_model *m = &h->m;
    int l, in = m->E;
    m->state_len = 0; m->max_cols = KB; m->max_rows = RB; m->max_chunk = RB;
    for (l = 0; l < m->L; l++) {
        const rs_layer *ly = &h->layers[l];
        if (!ly->wx.w || !ly->wh.w || !ly->bias || ly->hidden < 1 || ly->rows % ly->hidden || ly->input != in || ly->wx.rows != ly->rows || ly->wx.cols != in
            || ly->wh.rows != ly->rows || ly->wh.cols != ly->hidden) return -2;
        if (ly->rev) { /* the backward direction: same shapes, same folding */
            const rs_layer *r = ly->rev;
            if (!r->wx.w || !r->wh.w || r->wx.rows != ly->rows || r->wx.cols != in || r->wh.rows != ly->rows
                || r->wh.cols != ly->hidden || r->wx.cols_p != ly->wx.cols_p || r->wh.cols_p != ly->wh.cols_p
                || !r->tx_table != !ly->tx_table) return -2;
        }
        m->state_len += (m->cell == CELL_LSTM ? 2 : 1) * ly->hidden;
        if (ly->wx.cols_p > m->max_cols) m->max_cols = ly->wx.cols_p;
        if (ly->wh.cols_p > m->max_cols) m->max_cols = ly->wh.cols_p;
        if (rs_chunk_rows(ly) > m->max_chunk) m->max_chunk = rs_chunk_rows(ly);
        in = (ly->rev ? 2 : 1) * ly->hidden;
    }
    if (h->bidir) m->state_len = 0; /* no streaming state: whole sequences only */
    if (!m->dec.w || !m->dec_b || m->dec.cols != in || m->dec.rows != m->O) return -2;
    if (m->dec.cols_p > m->max_cols) m->max_cols = m->dec.cols_p;
    if (m->dec.rows_p > m->max_rows) m->max_rows = m->dec.rows_p;
    if (m->in.kind == INPUT_EMBEDDING && ((!m->emb && !m->emb_tied) || m->V < 1)) return -2;
    if (m->emb_tied && (m->in.kind != INPUT_EMBEDDING || m->dec.tile_ptr || m->dec.nm_idx || m->dec.strip_ptr || m->dec.panel_ptr || m->dec.rows != m->V
                        || m->dec.cols != m->E)) return -2;
    if (m->in.kind != INPUT_EMBEDDING && h->layers[0].tx_table) return -2;
    if (m->in.kind == INPUT_IDENTITY && m->in.F != m->E) return -2;
    if (m->in.kind == INPUT_LINEAR) {
        if (!m->in.w.w || m->in.w.rows != m->E || m->in.w.cols != m->in.F) return -2;
        if (m->in.w.cols_p > m->max_cols) m->max_cols = m->in.w.cols_p;
        if (m->in.w.rows_p > m->max_rows) m->max_rows = m->in.w.rows_p;
    }
    m->xbuf = (int8_t *)host_copy(h, NULL, (size_t)m->max_cols);
    m->hbuf = (int8_t *)host_copy(h, NULL, (size_t)m->max_cols);
    m->ybuf = (int8_t *)host_copy(h, NULL, (size_t)m->max_cols);
    m->ubuf = (uint8_t *)host_copy(h, NULL, 2 * (size_t)m->max_cols);
    m->ax = (int32_t *)host_copy(h, NULL, sizeof(int32_t) * m->max_chunk);
    m->ah = (int32_t *)host_copy(h, NULL, sizeof(int32_t) * m->max_chunk);
    m->acc = (int32_t *)host_copy(h, NULL, sizeof(int32_t) * m->max_rows);
    if (!m->xbuf || !m->hbuf || !m->ybuf || !m->ubuf || !m->ax || !m->ah || !m->acc) return -1;
    return 0;
}

int rs_state_len(const rs_host *h) { return h->m.state_len; }

/* The streaming entry points below refuse a bidirectional model (-2): a step cannot see the future. */
int rs_step(rs_host *h, int64_t token, int16_t *state, float *logits) {
    return h->bidir ? -2 : rs_core_step(&h->m, token, state, logits);
}

int rs_step_features(rs_host *h, const float *x, int16_t *state, float *logits) {
    return h->bidir ? -2 : rs_core_step_features(&h->m, x, state, logits);
}

/* n steps of F features ([n][F]); logits is [n][O]. Returns 0, or -1 for a token model. */
int rs_run_features(rs_host *h, const float *x, int n, int16_t *state, float *logits) {
    int t;
    if (h->bidir) return -2;
    for (t = 0; t < n; t++)
        if (rs_core_step_features(&h->m, x + (size_t)t * h->m.in.F, state, logits + (size_t)t * h->m.O)) return -1;
    return 0;
}

/* n tokens in a row; logits is [n][O]. Returns the index of the first bad token + 1, or 0. */
int rs_run(rs_host *h, const int64_t *tokens, int n, int16_t *state, float *logits) {
    int t;
    if (h->bidir) return -2;
    for (t = 0; t < n; t++)
        if (rs_core_step(&h->m, tokens[t], state, logits + (size_t)t * h->m.O)) return t + 1;
    return 0;
}

/* Delta steps (rnnslim_core.h "delta networks"): ds is the stream's delta state, rs_delta_bytes
   bytes, 8-byte aligned, zeroed at the stream's start. Same returns as rs_run / rs_run_features. */
size_t rs_delta_bytes(const rs_host *h) { return rs_core_delta_bytes(&h->m); }

int rs_step_delta(rs_host *h, int64_t token, int16_t *state, void *ds, float *logits) {
    return h->bidir ? -2 : rs_core_step_delta(&h->m, token, state, ds, logits);
}

int rs_run_delta(rs_host *h, const int64_t *tokens, int n, int16_t *state, void *ds, float *logits) {
    int t;
    if (h->bidir) return -2;
    for (t = 0; t < n; t++)
        if (rs_core_step_delta(&h->m, tokens[t], state, ds, logits + (size_t)t * h->m.O)) return t + 1;
    return 0;
}

int rs_run_features_delta(rs_host *h, const float *x, int n, int16_t *state, void *ds, float *logits) {
    int t;
    if (h->bidir) return -2;
    for (t = 0; t < n; t++)
        if (rs_core_step_features_delta(&h->m, x + (size_t)t * h->m.in.F, state, ds, logits + (size_t)t * h->m.O))
            return -1;
    return 0;
}

/* Bytes of the workspace rs_run_sequence needs for T steps. */
size_t rs_workspace_bytes(const rs_host *h, int T) { return rs_core_run_workspace(&h->m, T); }

/* The whole sequence from the zero state (also bidirectional models): see rs_core_run. */
int rs_run_sequence(rs_host *h, const int32_t *tokens, const float *x, int T, void *work, int readout, float *logits) {
    return rs_core_run(&h->m, tokens, x, T, work, readout, logits);
}
