/* minrnn.c: a character-level vanilla RNN in C99 with hand-written truncated BPTT, in the style
 * of Karpathy's min-char-rnn (one-hot input, a tanh hidden layer, softmax readout, BPTT over T
 * steps, Adagrad or SGD, every gradient clipped elementwise at 5), that puts itself on
 * rnnscope's panel through rnnscope.h and can fill a gradient-check case.
 *
 *   rnnscope c-header > rnnscope.h && cc -std=c99 -O2 minrnn.c -lm -o minrnn      (or: make)
 *   ./minrnn train input.txt run/ [--hidden 100] [--seq 25] [--batch 1] [--steps 5000]
 *                                 [--lr 0.1] [--sgd] [--log-every 100] [--eval-every 500]
 *                                 [--reset-every K]
 *   (train makes run/ and writes run/config.json and run/metrics.jsonl; each eval records
 *   eval_nll and the state-dependence readings; --reset-every K zeroes the carried state every
 *   K chunks)
 *   rnnscope doctor run/          rnnscope report run/
 *   rnnscope gradcheck --export case/ --layers 1 && ./minrnn case case/ &&
 *   rnnscope gradcheck --user case/
 *
 * Row vectors, as in rnnscope (its SPEC section 1), so a case's arrays need no transposing:
 *   a_t = Wxh[x_t] + h_{t-1} @ Whh + bh     (Wxh[x_t]: the row of the one-hot input's char)
 *   h_t = tanh(a_t),  p_t = softmax(h_t @ Why + by),  loss = sum over t, b of -log p_t[y_t]
 *   Wxh (V x H), Whh (H x H), bh (H), Why (H x V), by (V); arrays of positions are [t][b][.].
 * Like min-char-rnn the loss is the sum over the T*B targets, so the gradients are of the sum:
 * the records and the case divide by N = T*B where rnnscope expects the mean.
 */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rnnscope.h"

#define CLIP 5.0
#define EVAL_FRAC 0.05
enum { WXH, WHH, BH, WHY, BY, NPARAM };
static const char *NAMES[NPARAM] = {"0.Wxh", "0.Whh", "0.bh", "Why", "by"};

typedef struct {
    int V, H;
    rs_param p[NPARAM];   /* values and gradients, rnnscope's names */
    double *mem[NPARAM];  /* Adagrad's sums of squared gradients */
} Net;

typedef struct {          /* the arrays of one chunk of T steps of B streams */
    int T, B;
    double *hs;           /* (T+1, B, H): hs[0] the carried state, hs[t+1] = h_t */
    double *ps;           /* (T, B, V) softmax outputs */
    double *dh, *dh_raw;  /* (T, B, H) gradient reaching h_t, and of a_t */
} Chunk;

static void *alloc(size_t n)
{
    void *p = calloc(n ? n : 1, sizeof(double));
    if (!p) { fprintf(stderr, "minrnn: out of memory\n"); exit(1); }
    return p;
}

static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

static double uniform(void) /* xorshift64*, in (0, 1) */
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ULL >> 11) + 0.5) / 9007199254740992.0;
}

static double randn(void) /* Box-Muller */
{
    return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}

static Net net_new(int V, int H)
{
    Net n = {V, H, {{0}}, {0}};
    long sizes[NPARAM] = {(long)V * H, (long)H * H, H, (long)H * V, V};
    for (int k = 0; k < NPARAM; k++) {
        n.p[k] = (rs_param){NAMES[k], alloc(sizes[k]), alloc(sizes[k]), sizes[k]};
        n.mem[k] = alloc(sizes[k]);
        if (k == WXH || k == WHH || k == WHY) /* min-char-rnn: randn * 0.01, biases zero */
            for (long i = 0; i < sizes[k]; i++) n.p[k].value[i] = 0.01 * randn();
    }
    return n;
}

static Chunk chunk_new(const Net *n, int T, int B)
{
    Chunk c = {T, B, alloc((size_t)(T + 1) * B * n->H), alloc((size_t)T * B * n->V),
               alloc((size_t)T * B * n->H), alloc((size_t)T * B * n->H)};
    return c;
}

/* Forward over the chunk from the state in c->hs[0]; returns the summed loss. x, y: [t][b]. */
static double forward(const Net *n, Chunk *c, const int *x, const int *y)
{
    const int H = n->H, V = n->V, B = c->B;
    const double *Wxh = n->p[WXH].value, *Whh = n->p[WHH].value, *bh = n->p[BH].value,
                 *Why = n->p[WHY].value, *by = n->p[BY].value;
    double loss = 0;
    for (int t = 0; t < c->T; t++) {
        for (int b = 0; b < B; b++) {
            const double *hprev = c->hs + ((long)t * B + b) * H;
            double *h = c->hs + ((long)(t + 1) * B + b) * H, *p = c->ps + ((long)t * B + b) * V;
            for (int j = 0; j < H; j++) h[j] = Wxh[(long)x[t * B + b] * H + j] + bh[j];
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) h[j] += hprev[i] * Whh[(long)i * H + j];
            for (int j = 0; j < H; j++) h[j] = tanh(h[j]);
            double top = -INFINITY, total = 0;
            for (int v = 0; v < V; v++) p[v] = by[v];
            for (int i = 0; i < H; i++)
                for (int v = 0; v < V; v++) p[v] += h[i] * Why[(long)i * V + v];
            for (int v = 0; v < V; v++) top = p[v] > top ? p[v] : top;
            for (int v = 0; v < V; v++) total += p[v] = exp(p[v] - top);
            for (int v = 0; v < V; v++) p[v] /= total;
            loss += -log(p[y[t * B + b]]);
        }
    }
    return loss;
}

/* Backward through time: the gradients of the summed loss into n->p[k].grad, and the panel's
 * dh and dh_raw into c. The classic loop, from the last step to the first:
 *   dy = p - onehot(y);  dWhy += h^T dy;  dby += dy
 *   dh = dy Why^T + dh_next;  dh_raw = (1 - h*h) * dh
 *   dbh += dh_raw;  dWxh[x] += dh_raw;  dWhh += h_prev^T dh_raw;  dh_next = dh_raw Whh^T  */
static void backward(Net *n, Chunk *c, const int *x, const int *y)
{
    const int H = n->H, V = n->V, B = c->B;
    const double *Whh = n->p[WHH].value, *Why = n->p[WHY].value;
    double *dWxh = n->p[WXH].grad, *dWhh = n->p[WHH].grad, *dbh = n->p[BH].grad,
           *dWhy = n->p[WHY].grad, *dby = n->p[BY].grad;
    double *dy = alloc(V), *dh_next = alloc((size_t)B * H);
    for (int k = 0; k < NPARAM; k++) memset(n->p[k].grad, 0, n->p[k].size * sizeof(double));
    for (int t = c->T - 1; t >= 0; t--) {
        for (int b = 0; b < B; b++) {
            const long row = (long)t * B + b;
            const double *h = c->hs + (row + B) * H, *hprev = c->hs + row * H;
            double *dh = c->dh + row * H, *dh_raw = c->dh_raw + row * H, *next = dh_next + b * H;
            memcpy(dy, c->ps + row * V, V * sizeof(double));
            dy[y[row]] -= 1;
            for (int v = 0; v < V; v++) dby[v] += dy[v];
            for (int i = 0; i < H; i++) {
                dh[i] = next[i];
                for (int v = 0; v < V; v++) {
                    dWhy[(long)i * V + v] += h[i] * dy[v];
                    dh[i] += dy[v] * Why[(long)i * V + v];
                }
            }
            for (int j = 0; j < H; j++) {
                dh_raw[j] = (1 - h[j] * h[j]) * dh[j];
                dbh[j] += dh_raw[j];
                dWxh[(long)x[row] * H + j] += dh_raw[j];
            }
            for (int i = 0; i < H; i++) {
                next[i] = 0;
                for (int j = 0; j < H; j++) {
                    dWhh[(long)i * H + j] += hprev[i] * dh_raw[j];
                    next[i] += dh_raw[j] * Whh[(long)i * H + j];
                }
            }
        }
    }
    free(dy);
    free(dh_next);
}

/* clips every gradient component to [-CLIP, CLIP]; returns the fraction that was clipped */
static double clip(Net *n)
{
    long clipped = 0, total = 0;
    for (int k = 0; k < NPARAM; k++) {
        for (long i = 0; i < n->p[k].size; i++) {
            double *g = &n->p[k].grad[i];
            if (fabs(*g) > CLIP) { *g = *g > 0 ? CLIP : -CLIP; clipped++; }
        }
        total += n->p[k].size;
    }
    return (double)clipped / total;
}

/* Adagrad (min-char-rnn): mem += g*g; theta -= lr * g / sqrt(mem + 1e-8); or plain SGD */
static void update(Net *n, double lr, int sgd)
{
    for (int k = 0; k < NPARAM; k++) {
        double *theta = n->p[k].value, *g = n->p[k].grad, *mem = n->mem[k];
        for (long i = 0; i < n->p[k].size; i++) {
            if (sgd) { theta[i] -= lr * g[i]; continue; }
            mem[i] += g[i] * g[i];
            theta[i] -= lr * g[i] / sqrt(mem[i] + 1e-8);
        }
    }
}

/* One training step on the chunk (x, y) from the state in c->hs[0]. On a record step (rec not
 * NULL) it writes the panel: gradient norms before clipping, the probes, the update. Returns
 * the mean loss (nats/char); *clip_frac gets the fraction of gradient components clipped. */
static double train_step(Net *n, Chunk *c, const int *x, const int *y, double lr, int sgd,
                         rs_record *rec, rs_real *before, double *clip_frac)
{
    const long N = (long)c->T * c->B;
    double loss = forward(n, c, x, y) / N;
    backward(n, c, x, y);
    if (rec) {
        const double *h = c->hs + (long)c->B * n->H, *dh = c->dh, *dh_raw = c->dh_raw;
        rs_put_grad_norms(rec, n->p, NPARAM, 1.0 / N);
        rs_put_probes(rec, 1, &h, &dh, &dh_raw, N, n->H, 1.0, RS_SAT_THRESHOLD);
        rs_snapshot(n->p, NPARAM, before);
    }
    *clip_frac = clip(n);
    update(n, lr, sgd);
    if (rec) rs_put_update(rec, n->p, NPARAM, before);
    return loss;
}

/* ---------------------------------------------------------------------------- data */

typedef struct {
    int V;
    int id[256];       /* byte -> character id, -1 when absent */
    int *train, *eval; /* the text as ids: the first 95% and the last 5% */
    long ntrain, neval;
} Text;

static Text read_text(const char *path)
{
    Text d = {0, {0}, NULL, NULL, 0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "minrnn: cannot open %s\n", path); exit(2); }
    long cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;)
        if ((len += got) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf || len < 1000) { fprintf(stderr, "minrnn: %s is too short\n", path); exit(2); }
    int seen[256] = {0};
    for (long i = 0; i < len; i++) seen[buf[i]] = 1;
    for (int c = 0; c < 256; c++) d.id[c] = seen[c] ? d.V++ : -1;
    d.neval = (long)(len * EVAL_FRAC);
    d.ntrain = len - d.neval;
    d.train = alloc(len);
    for (long i = 0; i < len; i++) d.train[i] = d.id[buf[i]];
    d.eval = d.train + d.ntrain;
    free(buf);
    return d;
}

/* chunk i of B parallel streams over ids[0..n): x[t][b] = ids[b*L + i*T + t], y one further */
static void get_chunk(const int *ids, long n, int B, int T, long i, int *x, int *y)
{
    long L = n / B;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            x[t * B + b] = ids[b * L + i * T + t];
            y[t * B + b] = ids[b * L + i * T + t + 1];
        }
}

/* NLL (nats/char) over the eval text: one stream, the state carried from zero */
static double evaluate(const Net *n, const Text *d, int T)
{
    Chunk c = chunk_new(n, T, 1);
    int *x = alloc(T), *y = alloc(T);
    double total = 0;
    long chunks = (d->neval - 1) / T;
    for (long i = 0; i < chunks; i++) {
        get_chunk(d->eval, d->neval, 1, T, i, x, y);
        total += forward(n, &c, x, y);
        memcpy(c.hs, c.hs + (long)T * n->H, n->H * sizeof(double));
    }
    free(c.hs); free(c.ps); free(c.dh); free(c.dh_raw); free(x); free(y);
    return total / (chunks * T);
}

/* the NLL of ids[0..n] from the state h0 (NULL: zero), carried along: rnnscope.h's rs_scorer */
typedef struct {
    const Net *n;
    int T;
} Scorer;

static double score_text(void *scorer, const int *ids, long n, const rs_real *h0)
{
    const Scorer *s = scorer;
    const int T = s->T, H = s->n->H;
    Chunk c = chunk_new(s->n, T, 1);
    if (h0) memcpy(c.hs, h0, H * sizeof(double));
    double total = 0;
    long chunks = n / T;
    for (long i = 0; i < chunks; i++) {
        total += forward(s->n, &c, ids + i * T, ids + i * T + 1);
        memcpy(c.hs, c.hs + (long)T * H, H * sizeof(double));
    }
    free(c.hs); free(c.ps); free(c.dh); free(c.dh_raw);
    return total / (chunks * T);
}

/* ---------------------------------------------------------------------------- commands */

/* mkdir -p: 0, or -1 with errno set */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char end = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        if (end == '\0') return 0;
        *p = end;
    }
}

static int option(int argc, char **argv, const char *name, int fallback)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
    return fallback;
}

static int train(int argc, char **argv)
{
    int H = option(argc, argv, "--hidden", 100), T = option(argc, argv, "--seq", 25),
        B = option(argc, argv, "--batch", 1), steps = option(argc, argv, "--steps", 5000),
        log_every = option(argc, argv, "--log-every", 100),
        eval_every = option(argc, argv, "--eval-every", 500),
        reset_every = option(argc, argv, "--reset-every", 0), sgd = 0;
    double lr = 0.1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--lr") == 0 && i + 1 < argc) lr = atof(argv[i + 1]);
        if (strcmp(argv[i], "--sgd") == 0) sgd = 1;
    }
    rng_state += (unsigned long long)option(argc, argv, "--seed", 1);
    Text d = read_text(argv[2]);
    long chunks = (d.ntrain / B - 1) / T;
    if (chunks < 1 || H < 1 || T < 1 || B < 1 || log_every < 1 || eval_every < 1 ||
        reset_every < 0 || d.neval <= RS_STATE_WINDOW || d.ntrain / B <= RS_STATE_WINDOW) {
        fprintf(stderr, "minrnn: %s is too short for --seq %d --batch %d (or a setting is not "
                "positive); use a longer text or smaller settings\n", argv[2], T, B);
        return 2;
    }
    if (make_dirs(argv[3]) != 0) {
        fprintf(stderr, "minrnn: cannot make the run directory %s (%s); pass another\n",
                argv[3], strerror(errno));
        return 2;
    }
    char path[4096], config[512], reset[16] = "null";
    if (reset_every) snprintf(reset, sizeof reset, "%d", reset_every);
    snprintf(config, sizeof config, "{\"cell\": \"rnn\", \"hidden\": %d, \"layers\": 1, "
             "\"seq_len\": %d, \"batch\": %d, \"optimizer\": \"%s\", \"lr\": %g, "
             "\"clip\": \"elementwise\", \"clip_value\": %g, \"eval_frac\": %g, "
             "\"reset_every\": %s, \"log_every\": %d, \"eval_every\": %d}", H, T, B,
             sgd ? "sgd" : "adagrad", lr, CLIP, EVAL_FRAC, reset, log_every, eval_every);
    if (rs_write_config(argv[3], d.V, d.ntrain, config) != 0) return 2;
    snprintf(path, sizeof path, "%s/metrics.jsonl", argv[3]);
    FILE *log = fopen(path, "w");
    if (!log) {
        fprintf(stderr, "minrnn: cannot write %s (%s)\n", path, strerror(errno));
        return 2;
    }
    Net n = net_new(d.V, H);
    Chunk c = chunk_new(&n, T, B);
    int *x = alloc((size_t)T * B), *y = alloc((size_t)T * B);
    rs_real *before = alloc(rs_total_size(n.p, NPARAM));
    double loss_sum = 0, clip_sum = 0;
    int since = 0; /* steps since the last record */
    time_t start = time(NULL);
    for (int step = 1; step <= steps; step++) {
        long i = (step - 1) % chunks;
        for (int b = 0; b < B; b++) /* a new epoch, or stream b's turn to restart */
            if (i == 0 || (reset_every && (step - 1 + b * reset_every / B) % reset_every == 0))
                memset(c.hs + (long)b * H, 0, H * sizeof(double));
        get_chunk(d.train, d.ntrain, B, T, i, x, y);
        int due = step % log_every == 0 || step % eval_every == 0;
        rs_record rec = {0};
        if (due) rec = rs_record_begin(log, step);
        double frac, loss = train_step(&n, &c, x, y, lr, sgd, due ? &rec : NULL, before, &frac);
        if (!isfinite(loss)) {
            if (!due) rec = rs_record_begin(log, step);
            rs_put(&rec, "train_nll", loss);
            rs_put_text(&rec, "diverged", "loss not finite");
            rs_record_end(&rec);
            fprintf(stderr, "minrnn: the loss became NaN/inf at step %d\n", step);
            return 1;
        }
        loss_sum += loss;
        clip_sum += frac;
        since++;
        memcpy(c.hs, c.hs + (long)T * B * H, (size_t)B * H * sizeof(double)); /* carry h */
        if (!due) continue;
        rs_put(&rec, "chars", (double)step * T * B);
        rs_put(&rec, "elapsed_s", difftime(time(NULL), start));
        rs_put(&rec, "lr", lr);
        rs_put(&rec, "train_nll", loss_sum / since);
        rs_put(&rec, "clip_rate", clip_sum / since);
        if (step % eval_every == 0) {
            long read = (i + 1) * T; /* stream 0 has read ids[0..read]; its last window: */
            Scorer scorer = {&n, T};
            rs_put(&rec, "eval_nll", evaluate(&n, &d, T));
            rs_put_state_readings(&rec, score_text, &scorer, d.eval,
                                  d.train + (read > RS_STATE_WINDOW ? read - RS_STATE_WINDOW : 0),
                                  c.hs);
        }
        if (rs_record_end(&rec) != 0) return 1;
        printf("step %d: train %.4f nats/char\n", step, loss_sum / since);
        loss_sum = clip_sum = 0;
        since = 0;
    }
    return fclose(log) == 0 ? 0 : 1;
}

/* reads dir/name.npy into dst, which must have the given shape; 0 or -1 */
static int read_case(const char *dir, const char *name, double *dst, int ndim, const long *shape)
{
    char path[4096];
    int got_ndim;
    long got[RS_NPY_MAXDIM], n = 1;
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    double *a = rs_npy_read(path, &got_ndim, got);
    int ok = a && got_ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = got[i] == shape[i], n *= shape[i];
    if (ok) memcpy(dst, a, n * sizeof(double));
    else if (a) fprintf(stderr, "minrnn: %s has another shape than this network needs\n", path);
    free(a);
    return ok ? 0 : -1;
}

/* Answers a case made by `rnnscope gradcheck --export DIR --layers 1`: DIR/grad/{name}.npy, the
 * gradient of the mean loss (the summed loss's divided by N), and DIR/out/loss.npy, the mean
 * loss (rnnscope checks the forward pass with it). Then takes one SGD step on the case's chunk
 * and writes its panel record to DIR/panel.jsonl. */
static int fill_case(int argc, char **argv)
{
    const char *dir = argv[2];
    char path[4096];
    int ndim;
    long why[RS_NPY_MAXDIM], xs[RS_NPY_MAXDIM];
    snprintf(path, sizeof path, "%s/1.Whh.npy", dir);
    FILE *deeper = fopen(path, "rb");
    if (deeper) {
        fclose(deeper);
        fprintf(stderr, "minrnn: %s is a case for several layers; this network has one: "
                "export it with --layers 1\n", dir);
        return 2;
    }
    snprintf(path, sizeof path, "%s/Why.npy", dir);
    double *Why = rs_npy_read(path, &ndim, why);
    snprintf(path, sizeof path, "%s/x.npy", dir);
    double *x_ = Why && ndim == 2 ? rs_npy_read(path, &ndim, xs) : NULL;
    if (!x_ || ndim != 2) return 2;
    int H = (int)why[0], V = (int)why[1], T = (int)xs[0], B = (int)xs[1];
    Net n = net_new(V, H);
    Chunk c = chunk_new(&n, T, B);
    long shapes[NPARAM][2] = {{V, H}, {H, H}, {H, 0}, {H, V}, {V, 0}}, tb[2] = {T, B},
         h0[3] = {1, B, H};
    double *xd = alloc((size_t)T * B), *yd = alloc((size_t)T * B);
    for (int k = 0; k < NPARAM; k++)
        if (read_case(dir, NAMES[k], n.p[k].value, shapes[k][1] ? 2 : 1, shapes[k]) != 0)
            return 2;
    if (read_case(dir, "x", xd, 2, tb) != 0 || read_case(dir, "y", yd, 2, tb) != 0) return 2;
    snprintf(path, sizeof path, "%s/h0.npy", dir);
    FILE *has_h0 = fopen(path, "rb");
    if (has_h0 && (fclose(has_h0), read_case(dir, "h0", c.hs, 3, h0)) != 0) return 2;
    int *x = alloc((size_t)T * B), *y = alloc((size_t)T * B);
    for (long i = 0; i < (long)T * B; i++) {
        x[i] = (int)xd[i], y[i] = (int)yd[i];
        if (x[i] < 0 || x[i] >= V || y[i] < 0 || y[i] >= V) {
            fprintf(stderr, "minrnn: %s/x.npy or y.npy holds an id outside [0, %d)\n", dir, V);
            return 2;
        }
    }
    const long N = (long)T * B;
    double loss = forward(&n, &c, x, y) / N;
    backward(&n, &c, x, y);
    for (int k = 0; k < NPARAM; k++) {
        for (long i = 0; i < n.p[k].size; i++) n.p[k].grad[i] /= N;
        snprintf(path, sizeof path, "%s/grad/%s.npy", dir, NAMES[k]);
        if (rs_npy_write(path, n.p[k].grad, shapes[k][1] ? 2 : 1, shapes[k]) != 0) return 1;
    }
    snprintf(path, sizeof path, "%s/out/loss.npy", dir);
    if (rs_npy_write(path, &loss, 0, NULL) != 0) return 1;
    printf("loss %.17g nats/char; gradients written to %s/grad/\n", loss, dir);
    snprintf(path, sizeof path, "%s/panel.jsonl", dir);
    FILE *log = fopen(path, "w");
    if (!log) { fprintf(stderr, "minrnn: cannot write %s\n", path); return 1; }
    rs_real *before = alloc(rs_total_size(n.p, NPARAM));
    rs_record rec = rs_record_begin(log, 1);
    double frac, lr = 0.1;
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--lr") == 0) lr = atof(argv[i + 1]);
    rs_put(&rec, "train_nll", train_step(&n, &c, x, y, lr, 1, &rec, before, &frac));
    rs_put(&rec, "clip_rate", frac);
    rs_put(&rec, "lr", lr);
    return rs_record_end(&rec) == 0 && fclose(log) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "train") == 0) return train(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "case") == 0) return fill_case(argc, argv);
    fprintf(stderr, "usage: minrnn train TEXT RUN_DIR [--hidden 100] [--seq 25] [--batch 1] "
            "[--steps 5000] [--lr 0.1] [--sgd] [--log-every 100] [--eval-every 500] "
            "[--reset-every K] [--seed 1]\n       minrnn case CASE_DIR [--lr 0.1]\n");
    return 2;
}
