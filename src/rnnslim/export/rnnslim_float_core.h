/*
 * rnnslim_float_core.h: the fp32 reference step of rnnslim's exported float models
 * (rnnslim.export.c_float, manifest format "rnnslim-c-fp32"). C99, every function static
 * (several models may live in one program, each translation unit with its own copy), no
 * allocation: the weights are const arrays and the scratch buffers static arrays of the
 * generated NAME.c.
 *
 * Needs only <math.h> expf and tanhf (link with -lm where libm is a separate library) and
 * <string.h> memset / memcpy; nothing else of the C library, no double arithmetic.
 *
 * Model: embedding (token ids) or float features (through a Linear projection, or straight
 * in) -> unidirectional LSTM / GRU / RNN (tanh or relu) layers -> decoder Linear, batch 1,
 * one time step per call. The equations are PyTorch's (gate order LSTM i,f,g,o; GRU r,z,n):
 *
 *   a = W_ih x + b_ih,  b = W_hh h + b_hh          (each accumulated in float, columns in order)
 *   LSTM  i,f,o = sigmoid(a + b), g = tanh(a + b), c' = f c + i g, h' = o tanh(c')
 *   GRU   r,z = sigmoid(a + b), n = tanh(a_n + r b_n), h' = (h - n) z + n
 *   RNN   h' = tanh(a + b)  (or max(a + b, 0))
 *
 * with sigmoid(v) = 1 / (1 + expf(-v)). Matrices are stored transposed (column-major,
 * w[c * rows + r]) so the inner loop runs over output rows: it vectorizes without
 * reassociating any sum (each output is summed over its columns in order), and a zero
 * input column is one branch. Compile with -ffp-contract=off for results that do not
 * depend on FMA contraction; the outputs then equal torch's float32 forward to float
 * rounding (the order of the sums and expf / tanhf differ from torch's kernels by a few
 * ulp, not more).
 */
#ifndef RNNSLIM_FLOAT_CORE_H
#define RNNSLIM_FLOAT_CORE_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef RS_ALIGN64
#if defined(__GNUC__) || defined(__clang__)
#define RS_ALIGN64 __attribute__((aligned(64)))
#else
#define RS_ALIGN64
#endif
#endif

enum { RSF_LSTM = 0, RSF_GRU = 1, RSF_RNN_TANH = 2, RSF_RNN_RELU = 3 };
enum { RSF_IN_EMBEDDING = 0, RSF_IN_LINEAR = 1, RSF_IN_IDENTITY = 2 };

/* y = W x + b: W is rows x cols stored transposed (wt[c * rows + r]); b may be NULL. */
typedef struct {
    int rows, cols;
    const float *wt;
    const float *b;
} rsf_affine;

typedef struct {
    int input, hidden, rows; /* rows = G * hidden, G = 4 (LSTM), 3 (GRU), 1 (RNN) */
    rsf_affine wx, wh;       /* W_ih, b_ih and W_hh, b_hh */
} rsf_layer;

typedef struct {
    int cell, input_kind, L;
    int V;         /* vocabulary (embedding) or number of input features */
    int E, O;      /* width fed to layer 0, outputs */
    int state_len; /* floats per stream: LSTM [h | c] per layer, GRU / RNN [h] */
    const float *emb; /* [V][E] (embedding input) or NULL */
    rsf_affine proj;  /* the input projection (linear input) */
    const rsf_layer *layers;
    rsf_affine dec;
    float *xbuf;   /* [E] projected features */
    float *ga, *gb; /* [max rows] input and recurrent gate pre-activations */
} rsf_model;

static void rsf_apply(const rsf_affine *m, const float *x, float *y) {
    const int R = m->rows, C = m->cols;
    int r, c;
    for (r = 0; r < R; r++) y[r] = 0.0f;
    for (c = 0; c < C; c++) {
        const float xc = x[c];
        const float *w = m->wt + (size_t)c * (size_t)R;
        if (xc == 0.0f) continue; /* exact: finite w * 0 adds a zero, and y is never -0 */
        for (r = 0; r < R; r++) y[r] += w[r] * xc;
    }
    if (m->b)
        for (r = 0; r < R; r++) y[r] += m->b[r];
}

static float rsf_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* One layer: updates the layer's state (h, and c after it for LSTM) from input x. */
static void rsf_layer_step(const rsf_model *m, const rsf_layer *ly, const float *x, float *h) {
    const int H = ly->hidden;
    float *a = m->ga, *b = m->gb;
    int j;
    rsf_apply(&ly->wx, x, a);
    rsf_apply(&ly->wh, h, b);
    if (m->cell == RSF_LSTM) {
        float *c = h + H;
        for (j = 0; j < H; j++) {
            const float ig = rsf_sigmoid(b[j] + a[j]);
            const float fg = rsf_sigmoid(b[H + j] + a[H + j]);
            const float gg = tanhf(b[2 * H + j] + a[2 * H + j]);
            const float og = rsf_sigmoid(b[3 * H + j] + a[3 * H + j]);
            const float cj = fg * c[j] + ig * gg;
            c[j] = cj;
            h[j] = og * tanhf(cj);
        }
    } else if (m->cell == RSF_GRU) {
        for (j = 0; j < H; j++) {
            const float r = rsf_sigmoid(b[j] + a[j]);
            const float z = rsf_sigmoid(b[H + j] + a[H + j]);
            const float n = tanhf(a[2 * H + j] + r * b[2 * H + j]);
            h[j] = (h[j] - n) * z + n;
        }
    } else {
        for (j = 0; j < H; j++) {
            const float v = b[j] + a[j];
            h[j] = m->cell == RSF_RNN_RELU ? (v > 0.0f ? v : 0.0f) : tanhf(v);
        }
    }
}

/* One step from layer-0 input x (E floats): updates state, writes O logits. */
static void rsf_core_forward(const rsf_model *m, const float *x, float *state, float *logits) {
    int k;
    for (k = 0; k < m->L; k++) {
        const rsf_layer *ly = &m->layers[k];
        rsf_layer_step(m, ly, x, state);
        x = state; /* the layer's h feeds the next layer */
        state += (m->cell == RSF_LSTM ? 2 : 1) * ly->hidden;
    }
    rsf_apply(&m->dec, x, logits);
}

/* One step: the token (embedding input; features unused) or the V input features (feature
   input; token unused, projected to E when the model has an input projection). Updates
   state, writes O logits. Returns 0, or -1 when the token is outside [0, V) (nothing changed). */
static int rsf_core_step(const rsf_model *m, int32_t token, const float *features, float *state, float *logits) {
    const float *x = features;
    if (m->input_kind == RSF_IN_EMBEDDING) {
        if (token < 0 || token >= m->V) return -1;
        x = m->emb + (size_t)token * (size_t)m->E;
    } else if (m->input_kind == RSF_IN_LINEAR) {
        rsf_apply(&m->proj, features, m->xbuf);
        x = m->xbuf;
    }
    rsf_core_forward(m, x, state, logits);
    return 0;
}

#endif
