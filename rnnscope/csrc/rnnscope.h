/* rnnscope.h: put your own C network on rnnscope's instrument panel.
 *
 * One C99 header, libc and libm only (link with -lm). Get it with `rnnscope c-header > rnnscope.h`.
 *
 *     #define RNNSCOPE_REAL float   // optional: the type of your arrays (default double)
 *     #include "rnnscope.h"
 *
 * 1. Readings of the panel (rnnscope SPEC section 3) from your program's own arrays.
 *    An array of a layer's hidden states, h, is rows x H numbers, one row per (t, b) position
 *    (rows = T*B; any order of the rows). dh is the gradient reaching h_t (from the readout and
 *    the layer above, plus dh_next from step t+1), dh_raw = (1 - h*h) * dh the gradient of the
 *    pre-activation. rnnscope defines dh_norm on the gradient of the *summed* NLL: pass
 *    to_sum = 1 when your loss is the sum over the T*B targets (min-char-rnn), to_sum = T*B
 *    when it is their mean.
 * 2. Records: one JSON object per line in metrics.jsonl, which `rnnscope doctor`, `report` and
 *    `compare` read (docs/format.md: every key, its unit and which are required).
 * 3. State dependence (docs/panel.md): how your network scores the same text from a fresh
 *    (zero) state and from the state your training stream carries, at each eval, through a
 *    scoring function of your own (rs_put_state_readings); and config.json, which tells
 *    `rnnscope doctor` your settings, your alphabet's size and your training split's size.
 * 4. .npy files: read and write arrays, to fill a gradient-check case made by
 *    `rnnscope gradcheck --export CASE_DIR` and check it with `rnnscope gradcheck --user CASE_DIR`.
 *
 * Every function is static inline: include the header wherever you need it. A function that
 * fails prints one line naming the file and the problem to stderr and returns NULL or -1.
 */
#ifndef RNNSCOPE_H
#define RNNSCOPE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RNNSCOPE_REAL
#define RNNSCOPE_REAL double
#endif
typedef RNNSCOPE_REAL rs_real;

#define RS_SAT_THRESHOLD 0.95 /* rnnscope's default --sat-threshold */
#define RS_NPY_MAXDIM 8

/* ------------------------------------------------------------------ readings of one layer */

/* mean of |h| over all n entries */
static inline double rs_mean_abs_h(const rs_real *h, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += fabs((double)h[i]);
    return s / (double)n;
}

/* fraction of the n entries with |h| > threshold */
static inline double rs_sat_ratio(const rs_real *h, long n, double threshold)
{
    long c = 0;
    for (long i = 0; i < n; i++) c += fabs((double)h[i]) > threshold;
    return (double)c / (double)n;
}

/* mean of 1 - h*h, the factor the tanh derivative multiplies into dh */
static inline double rs_mean_gain(const rs_real *h, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)h[i] * (double)h[i];
    return 1.0 - s / (double)n;
}

/* dh_norm (and dh_raw_norm): mean over the rows of the L2 norm of to_sum * dh[row] (H each) */
static inline double rs_dh_norm(const rs_real *dh, long rows, int H, double to_sum)
{
    double s = 0;
    for (long r = 0; r < rows; r++) {
        double sq = 0;
        for (int j = 0; j < H; j++) sq += (double)dh[r * H + j] * (double)dh[r * H + j];
        s += sqrt(sq);
    }
    return fabs(to_sum) * s / (double)rows;
}

/* ------------------------------------------------------------------ parameters and updates */

/* One parameter of your network: its name as rnnscope would write it ("0.Wxh", "Why", ...),
 * its values and its gradient (size numbers each). */
typedef struct {
    const char *name;
    rs_real *value;
    rs_real *grad;
    long size;
} rs_param;

/* L2 norm of n numbers */
static inline double rs_norm(const rs_real *a, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)a[i];
    return sqrt(s);
}

/* global L2 norm of the gradients of all count parameters */
static inline double rs_grad_norm(const rs_param *p, int count)
{
    double s = 0;
    for (int k = 0; k < count; k++) {
        double g = rs_norm(p[k].grad, p[k].size);
        s += g * g;
    }
    return sqrt(s);
}

/* how many numbers the parameters hold: the size of rs_snapshot's buffer */
static inline long rs_total_size(const rs_param *p, int count)
{
    long n = 0;
    for (int k = 0; k < count; k++) n += p[k].size;
    return n;
}

/* copy every parameter's values into before (rs_total_size numbers), ahead of the update */
static inline void rs_snapshot(const rs_param *p, int count, rs_real *before)
{
    for (int k = 0; k < count; k++) {
        memcpy(before, p[k].value, (size_t)p[k].size * sizeof(rs_real));
        before += p[k].size;
    }
}

/* adds the squared norms of (after - before) and of before, over n numbers, to *d2 and *b2 */
static inline void rs_change_sums(const rs_real *after, const rs_real *before, long n,
                                  double *d2, double *b2)
{
    for (long i = 0; i < n; i++) {
        double d = (double)after[i] - (double)before[i];
        *d2 += d * d;
        *b2 += (double)before[i] * (double)before[i];
    }
}

/* update ratio over all parameters: norm(theta_after - theta_before) / norm(theta_before),
 * with before the rs_snapshot taken ahead of the update (inf when theta_before is 0) */
static inline double rs_update_ratio(const rs_param *p, int count, const rs_real *before)
{
    double d2 = 0, b2 = 0;
    for (int k = 0; k < count; k++) {
        rs_change_sums(p[k].value, before, p[k].size, &d2, &b2);
        before += p[k].size;
    }
    return b2 > 0 ? sqrt(d2 / b2) : INFINITY;
}

/* ------------------------------------------------------------------ records (JSON lines) */

/* A record being written: rs_record_begin, then rs_put_* in any order, then rs_record_end. */
typedef struct {
    FILE *f;
    char key[128];
} rs_record;

static inline void rs_write_key(FILE *f, const char *key)
{
    fputs(", \"", f);
    for (const char *c = key; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', f);
        if ((unsigned char)*c >= 0x20) fputc(*c, f);
    }
    fputs("\": ", f);
}

/* opens the record of optimizer step `step` on f (metrics.jsonl, opened for appending) */
static inline rs_record rs_record_begin(FILE *f, long step)
{
    rs_record r;
    r.f = f;
    fprintf(f, "{\"step\": %ld", step);
    return r;
}

/* "key": value; NaN and inf are written as null, as rnnscope does (JSON has no NaN) */
static inline void rs_put(rs_record *r, const char *key, double value)
{
    rs_write_key(r->f, key);
    if (isfinite(value)) fprintf(r->f, "%.17g", value);
    else fputs("null", r->f);
}

/* "{prefix}.{name}": value, e.g. rs_put2(r, "layer0", "sat_ratio", v) or
 * rs_put2(r, "grad_norm", "0.Whh", v) */
static inline void rs_put2(rs_record *r, const char *prefix, const char *name, double value)
{
    snprintf(r->key, sizeof r->key, "%s.%s", prefix, name);
    rs_put(r, r->key, value);
}

/* "key": "text" (a note such as "diverged": "loss not finite") */
static inline void rs_put_text(rs_record *r, const char *key, const char *text)
{
    rs_write_key(r->f, key);
    fputc('"', r->f);
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', r->f);
        if ((unsigned char)*c >= 0x20) fputc(*c, r->f);
    }
    fputc('"', r->f);
}

/* closes the record and flushes it; 0, or -1 when the file could not be written */
static inline int rs_record_end(rs_record *r)
{
    fputs("}\n", r->f);
    if (fflush(r->f) != 0 || ferror(r->f)) {
        fprintf(stderr, "rnnscope.h: could not write a record (disk full?)\n");
        return -1;
    }
    return 0;
}

/* The probe readings of `layers` layers: layer{l}.mean_abs_h, .sat_ratio, .mean_gain, .dh_norm,
 * .dh_raw_norm for each layer l and, un-prefixed, their mean over the layers (as rnnscope
 * writes them). h[l], dh[l], dh_raw[l]: rows x H arrays of layer l (see the top). */
static inline void rs_put_probes(rs_record *r, int layers, const rs_real *const *h,
                                 const rs_real *const *dh, const rs_real *const *dh_raw,
                                 long rows, int H, double to_sum, double sat_threshold)
{
    static const char *names[5] = {"mean_abs_h", "sat_ratio", "mean_gain", "dh_norm",
                                   "dh_raw_norm"};
    double mean[5] = {0, 0, 0, 0, 0};
    char layer[32];
    long n = rows * H;
    for (int l = 0; l < layers; l++) {
        double v[5];
        v[0] = rs_mean_abs_h(h[l], n);
        v[1] = rs_sat_ratio(h[l], n, sat_threshold);
        v[2] = rs_mean_gain(h[l], n);
        v[3] = rs_dh_norm(dh[l], rows, H, to_sum);
        v[4] = rs_dh_norm(dh_raw[l], rows, H, to_sum);
        snprintf(layer, sizeof layer, "layer%d", l);
        for (int k = 0; k < 5; k++) {
            rs_put2(r, layer, names[k], v[k]);
            mean[k] += v[k] / layers;
        }
    }
    for (int k = 0; k < 5; k++) rs_put(r, names[k], mean[k]);
}

/* grad_norm (global) and grad_norm.{name}: call it before clipping. to_mean turns your
 * gradients into gradients of the mean loss, as rnnscope records them: 1 / (T*B) when your
 * loss is the sum over the targets, 1 when it is their mean. */
static inline void rs_put_grad_norms(rs_record *r, const rs_param *p, int count, double to_mean)
{
    to_mean = fabs(to_mean);
    rs_put(r, "grad_norm", rs_grad_norm(p, count) * to_mean);
    for (int k = 0; k < count; k++)
        rs_put2(r, "grad_norm", p[k].name, rs_norm(p[k].grad, p[k].size) * to_mean);
}

/* update_ratio (global), update_ratio.{name} and param_norm.{name}: after the update, with
 * before the rs_snapshot taken ahead of it */
static inline void rs_put_update(rs_record *r, const rs_param *p, int count,
                                 const rs_real *before)
{
    rs_put(r, "update_ratio", rs_update_ratio(p, count, before));
    for (int k = 0; k < count; k++) {
        rs_put2(r, "update_ratio", p[k].name, rs_update_ratio(p + k, 1, before));
        rs_put2(r, "param_norm", p[k].name, rs_norm(p[k].value, p[k].size));
        before += p[k].size;
    }
}

/* ------------------------------------------------------------------ state dependence */

#define RS_STATE_WINDOW 200 /* characters each state-dependence reading scores, as rnnscope's */

/* Your network's mean NLL (nats/char) over the n characters ids[0..n] (n inputs, each
 * predicting the next: ids[n] is read), from the hidden state h0 (NULL: the zero state),
 * carried along them; it must not change your training state or parameters. */
typedef double (*rs_scorer)(void *net, const int *ids, long n, const rs_real *h0);

/* eval_nll_fresh, eval_nll_carried and train_nll_fresh (rnnscope's names, docs/panel.md): the
 * first RS_STATE_WINDOW characters of your held-out text from a zero state and from
 * `carried`, the state your training stream carries now; and the RS_STATE_WINDOW characters
 * your training stream read last, from `recent` on, from a zero state. Both texts must hold
 * RS_STATE_WINDOW + 1 characters. Record them with eval_nll, at each eval. */
static inline void rs_put_state_readings(rs_record *r, rs_scorer score, void *net,
                                         const int *eval_ids, const int *recent,
                                         const rs_real *carried)
{
    rs_put(r, "eval_nll_fresh", score(net, eval_ids, RS_STATE_WINDOW, NULL));
    rs_put(r, "eval_nll_carried", score(net, eval_ids, RS_STATE_WINDOW, carried));
    rs_put(r, "train_nll_fresh", score(net, recent, RS_STATE_WINDOW, NULL));
}

/* dir/config.json for `rnnscope doctor` (docs/format.md): {"source": "c", ...}, so the triage
 * words its next steps as settings in words; your alphabet's size (the uniform guess ln V), your
 * training split's size in characters (whether the model has read it once) and `config`, a JSON
 * object of rnnscope's setting names (or "{}"), e.g. {"hidden": 100, "seq_len": 25,
 * "optimizer": "adagrad", "lr": 0.1}. 0, or -1 when it could not write. */
static inline int rs_write_config(const char *dir, int vocab_size, long train_chars,
                                  const char *config)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "rnnscope.h: cannot write %s\n", path);
        return -1;
    }
    fprintf(f, "{\"source\": \"c\", \"vocab_size\": %d, \"train_chars\": %ld, "
            "\"config\": %s}\n", vocab_size, train_chars, config);
    if (fclose(f) != 0) {
        fprintf(stderr, "rnnscope.h: could not write %s (disk full?)\n", path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ .npy files */

static inline int rs_little_endian(void)
{
    const unsigned short one = 1;
    return *(const unsigned char *)&one == 1;
}

/* writes the n = prod(shape) numbers of data as an .npy file (C order); 0 or -1 */
static inline int rs_npy_write(const char *path, const rs_real *data, int ndim,
                               const long *shape)
{
    char head[256];
    long n = 1;
    int len = snprintf(head, sizeof head, "{'descr': '%cf%d', 'fortran_order': False, "
                       "'shape': (", rs_little_endian() ? '<' : '>', (int)sizeof(rs_real));
    for (int i = 0; i < ndim; i++) {
        len += snprintf(head + len, sizeof head - (size_t)len, "%ld%s", shape[i],
                        ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
        n *= shape[i];
    }
    len += snprintf(head + len, sizeof head - (size_t)len, "), }");
    while ((10 + len + 1) % 64 != 0) head[len++] = ' '; /* the header ends on 64 bytes */
    head[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "rnnscope.h: cannot write %s (does its directory exist?)\n", path);
        return -1;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(head, 1, (size_t)len, f) == (size_t)len &&
             fwrite(data, sizeof(rs_real), (size_t)n, f) == (size_t)n;
    ok = (fclose(f) == 0) && ok;
    if (!ok) fprintf(stderr, "rnnscope.h: could not write all of %s (disk full?)\n", path);
    return ok ? 0 : -1;
}

/* one number of kind 'f' (float), 'i' (signed) or 'u' (unsigned) and size bytes, in byte order
 * swap or not, as a double */
static inline double rs_npy_number(const unsigned char *src, char kind, int size, int swap)
{
    unsigned char b[8];
    for (int i = 0; i < size; i++) b[i] = src[swap ? size - 1 - i : i];
    if (kind == 'f' && size == 8) { double v; memcpy(&v, b, 8); return v; }
    if (kind == 'f' && size == 4) { float v; memcpy(&v, b, 4); return v; }
    if (kind == 'i' && size == 8) { long long v; memcpy(&v, b, 8); return (double)v; }
    if (kind == 'i' && size == 4) { int v; memcpy(&v, b, 4); return v; }
    if (kind == 'i' && size == 1) return (signed char)b[0];
    if (kind == 'u' && size == 8) { unsigned long long v; memcpy(&v, b, 8); return (double)v; }
    if (kind == 'u' && size == 4) { unsigned v; memcpy(&v, b, 4); return v; }
    return b[0]; /* 'u' or 'b', size 1 */
}

/* reads the header of an .npy file open on f: the numbers' byte order ('<', '>', '|', '='),
 * kind ('f', 'i', 'u', 'b') and size in bytes, ndim and shape; returns how many numbers
 * follow, or -1 when the header is not one rnnscope.h reads */
static inline long rs_npy_header(FILE *f, char *order, char *kind, int *size, int *ndim,
                                 long *shape)
{
    unsigned char pre[12];
    char head[4096];
    long n = 1, len;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) return -1;
    len = pre[8] | (long)pre[9] << 8;
    if (pre[6] >= 2) { /* versions 2 and 3: a 4-byte header length */
        if (fread(pre + 10, 1, 2, f) != 2) return -1;
        len |= (long)pre[10] << 16 | (long)pre[11] << 24;
    }
    if (len <= 0 || len >= (long)sizeof head || fread(head, 1, (size_t)len, f) != (size_t)len)
        return -1;
    head[len] = 0;
    const char *d = strstr(head, "'descr':"), *fo = strstr(head, "'fortran_order':"),
               *s = strstr(head, "'shape':");
    if (!d || !fo || !s || strncmp(fo + 16, " False", 6) != 0) return -1;
    d = strchr(d + 8, '\'');
    s = strchr(s, '(');
    if (!d || !s || sscanf(d + 1, "%c%c%d", order, kind, size) != 3) return -1;
    for (*ndim = 0, s++; *s != ')';) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || *ndim == RS_NPY_MAXDIM) return -1;
        shape[(*ndim)++] = v;
        n *= v;
        s = end + strspn(end, ", ");
    }
    return n;
}

/* reads an .npy file of floats or integers (any byte order, C order) into a new array of
 * rs_real (free it); writes ndim and shape[RS_NPY_MAXDIM]. NULL on any problem. */
static inline rs_real *rs_npy_read(const char *path, int *ndim, long *shape)
{
    char order = 0, kind = 0;
    int size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "rnnscope.h: cannot open %s\n", path);
        return NULL;
    }
    long n = rs_npy_header(f, &order, &kind, &size, ndim, shape);
    int known = strchr("<>|=", order) && strchr("fiub", kind) &&
                (size == 1 || size == 4 || size == 8) && (kind != 'f' || size > 1);
    unsigned char *raw = n >= 0 && known ? (unsigned char *)malloc((size_t)(n + 1) * size) : NULL;
    rs_real *out = raw ? (rs_real *)malloc((size_t)(n + 1) * sizeof(rs_real)) : NULL;
    int ok = out && fread(raw, (size_t)size, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) {
        int swap = size > 1 && (order == '>') == rs_little_endian();
        for (long i = 0; i < n; i++)
            out[i] = (rs_real)rs_npy_number(raw + i * size, kind, size, swap);
    } else if (n >= 0 && !known) {
        fprintf(stderr, "rnnscope.h: %s holds numbers of type %c%c%d; save float32/64 or "
                "int32/64 arrays\n", path, order, kind, size);
    } else {
        fprintf(stderr, "rnnscope.h: %s is not a readable .npy file (truncated, Fortran order "
                "or not .npy); save it with numpy.save\n", path);
    }
    free(raw);
    if (!ok) free(out);
    return ok ? out : NULL;
}

#endif /* RNNSCOPE_H */
