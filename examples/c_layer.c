/* The layer in plain C, checked through the worker protocol (stdio only):

       cc -O2 -o c_layer examples/c_layer.c
       python -m verify check --command ./c_layer                 # float32
       python -m verify check --command ./c_layer --dtype float64

   The layer with a bias b (O,), output = x @ w + b, is the same file built with WITH_BIAS:

       cc -O2 -DWITH_BIAS -o c_bias_layer examples/c_layer.c
       python -m verify check --command ./c_bias_layer

   It greets with "bias" (and grad_b), takes forward(x, w, b) and step(x, w, b, target, lr),
   returns (loss, dL_dx, dL_dw, dL_db, w_new, b_new) from step, and updates b with update.

   Every function of the contract, for float32 and float64 (other dtypes get an error reply,
   which the oracle reports as "raised"). Shapes: x (N, I), w (I, O), target and output (N, O).
   The protocol (see docs/protocol.md, "Any language: the worker protocol"):

       -> crosscheck 1 forward,loss,loss_grad,grad_x,grad_w,update,step     once, at start
       <- call <function> <count>        then <count> arrays: "<dtype> <ndim> <dims...>\n" and
                                         the raw little-endian C-order bytes; lr is a 0-d float64
       -> ok <count>                     then the result arrays, then every argument echoed
       -> error <n>                      then n lines (the first says what went wrong)

   Nothing but the protocol goes to stdout: messages for people go to stderr. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 5

#ifdef WITH_BIAS
#define GREETING "crosscheck 1 forward,loss,loss_grad,grad_x,grad_w,grad_b,update,step bias\n"
#define BIAS 1 /* one more argument to forward and step: b, after w */
#else
#define GREETING "crosscheck 1 forward,loss,loss_grad,grad_x,grad_w,update,step\n"
#define BIAS 0
#endif

typedef struct {
    char dtype[16];
    int ndim;
    long dims[2];
    long size; /* elements */
    void *data;
} Array;

static long item_size(const char *dtype) {
    if (strcmp(dtype, "float64") == 0) return 8;
    if (strcmp(dtype, "float32") == 0) return 4;
    if (strcmp(dtype, "float16") == 0 || strcmp(dtype, "bfloat16") == 0) return 2;
    return 0;
}

/* Read one array (header line and bytes); 0 on success. */
static int read_array(Array *a) {
    char line[256];
    if (!fgets(line, sizeof line, stdin)) return -1;
    long d0 = 1, d1 = 1;
    int fields = sscanf(line, "%15s %d %ld %ld", a->dtype, &a->ndim, &d0, &d1);
    if (fields < 2 || a->ndim < 0 || a->ndim > 2 || fields != 2 + a->ndim) return -1;
    a->dims[0] = a->ndim > 0 ? d0 : 1;
    a->dims[1] = a->ndim > 1 ? d1 : 1;
    a->size = a->dims[0] * a->dims[1];
    long bytes = a->size * item_size(a->dtype);
    a->data = malloc(bytes > 0 ? bytes : 1);
    if (a->data == NULL || (long)fread(a->data, 1, bytes, stdin) != bytes) return -1;
    return 0;
}

static void write_array(const char *dtype, int ndim, long d0, long d1, const void *data) {
    long size = (ndim > 0 ? d0 : 1) * (ndim > 1 ? d1 : 1);
    if (ndim == 0) printf("%s 0\n", dtype);
    else if (ndim == 1) printf("%s 1 %ld\n", dtype, d0);
    else printf("%s 2 %ld %ld\n", dtype, d0, d1);
    fwrite(data, item_size(dtype), size, stdout);
}

static void reply_error(const char *message) { printf("error 1\n%s\n", message); }

/* The layer, once per element type T (the seed's loops, in T arithmetic). */
#define LAYER(T)                                                                            \
    /* b may be NULL: the layer without a bias */                                            \
    static void forward_##T(const T *x, const T *w, const T *b, T *out, long n, long i,     \
                            long o) {                                                        \
        for (long d = 0; d < n; d++)                                                         \
            for (long j = 0; j < o; j++) {                                                   \
                T sum = 0;                                                                   \
                for (long k = 0; k < i; k++) sum += x[d * i + k] * w[k * o + j];             \
                out[d * o + j] = b ? sum + b[j] : sum;                                       \
            }                                                                                \
    }                                                                                        \
    /* dL_db = dL_do summed over the batch: (N, O) -> (O,) */                                \
    static void grad_b_##T(const T *dL_do, T *dL_db, long n, long o) {                      \
        for (long j = 0; j < o; j++) {                                                       \
            T sum = 0;                                                                       \
            for (long d = 0; d < n; d++) sum += dL_do[d * o + j];                            \
            dL_db[j] = sum;                                                                  \
        }                                                                                    \
    }                                                                                        \
    static T loss_##T(const T *out, const T *target, long size) {                            \
        T sum = 0;                                                                           \
        for (long k = 0; k < size; k++) {                                                    \
            T diff = out[k] - target[k];                                                     \
            sum += diff < 0 ? -diff : diff;                                                  \
        }                                                                                    \
        return sum;                                                                          \
    }                                                                                        \
    static void loss_grad_##T(const T *out, const T *target, T *dL_do, long size) {         \
        for (long k = 0; k < size; k++) dL_do[k] = out[k] > target[k] ? 1 : -1;             \
    }                                                                                        \
    /* dL_dx = dL_do @ w.T: (N, O) x (I, O) -> (N, I) */                                     \
    static void grad_x_##T(const T *dL_do, const T *w, T *dL_dx, long n, long i, long o) {  \
        for (long d = 0; d < n; d++)                                                         \
            for (long k = 0; k < i; k++) {                                                   \
                T sum = 0;                                                                   \
                for (long j = 0; j < o; j++) sum += dL_do[d * o + j] * w[k * o + j];         \
                dL_dx[d * i + k] = sum;                                                      \
            }                                                                                \
    }                                                                                        \
    /* dL_dw = x.T @ dL_do: (N, I) x (N, O) -> (I, O) */                                     \
    static void grad_w_##T(const T *x, const T *dL_do, T *dL_dw, long n, long i, long o) {  \
        for (long k = 0; k < i; k++)                                                         \
            for (long j = 0; j < o; j++) {                                                   \
                T sum = 0;                                                                   \
                for (long d = 0; d < n; d++) sum += x[d * i + k] * dL_do[d * o + j];         \
                dL_dw[k * o + j] = sum;                                                      \
            }                                                                                \
    }                                                                                        \
    static void update_##T(const T *w, const T *dL_dw, double lr, T *w_new, long size) {    \
        T rate = (T)lr; /* lr in the parameters' dtype, as an optimiser holds it */          \
        for (long k = 0; k < size; k++) w_new[k] = w[k] - rate * dL_dw[k];                  \
    }                                                                                        \
    /* One call: args hold the arrays of the request; results are written as they come. */  \
    static int call_##T(const char *fn, Array *args, int count, const char *dtype) {        \
        long n, i, o;                                                                        \
        if (strcmp(fn, "forward") == 0 && count == 2 + BIAS) {                               \
            n = args[0].dims[0], i = args[0].dims[1], o = args[1].dims[1];                   \
            if (args[1].dims[0] != i || (BIAS && args[2].size != o)) return -2;              \
            T *out = malloc(sizeof(T) * (n * o + 1));                                        \
            forward_##T(args[0].data, args[1].data, BIAS ? args[2].data : NULL, out, n, i, o); \
            printf("ok 1\n");                                                                \
            write_array(dtype, 2, n, o, out);                                                \
            free(out);                                                                       \
        } else if (strcmp(fn, "loss") == 0 && count == 2) {                                  \
            T value = loss_##T(args[0].data, args[1].data, args[0].size);                    \
            printf("ok 1\n");                                                                \
            write_array(dtype, 0, 0, 0, &value);                                             \
        } else if (strcmp(fn, "loss_grad") == 0 && count == 2) {                             \
            T *dL_do = malloc(sizeof(T) * (args[0].size + 1));                               \
            loss_grad_##T(args[0].data, args[1].data, dL_do, args[0].size);                  \
            printf("ok 1\n");                                                                \
            write_array(dtype, 2, args[0].dims[0], args[0].dims[1], dL_do);                  \
            free(dL_do);                                                                     \
        } else if (strcmp(fn, "grad_x") == 0 && count == 2) {                                \
            n = args[0].dims[0], o = args[0].dims[1], i = args[1].dims[0];                   \
            T *dL_dx = malloc(sizeof(T) * (n * i + 1));                                      \
            grad_x_##T(args[0].data, args[1].data, dL_dx, n, i, o);                          \
            printf("ok 1\n");                                                                \
            write_array(dtype, 2, n, i, dL_dx);                                              \
            free(dL_dx);                                                                     \
        } else if (strcmp(fn, "grad_w") == 0 && count == 2) {                                \
            n = args[0].dims[0], i = args[0].dims[1], o = args[1].dims[1];                   \
            T *dL_dw = malloc(sizeof(T) * (i * o + 1));                                      \
            grad_w_##T(args[0].data, args[1].data, dL_dw, n, i, o);                          \
            printf("ok 1\n");                                                                \
            write_array(dtype, 2, i, o, dL_dw);                                              \
            free(dL_dw);                                                                     \
        } else if (BIAS && strcmp(fn, "grad_b") == 0 && count == 1) {                        \
            n = args[0].dims[0], o = args[0].dims[1];                                        \
            T *dL_db = malloc(sizeof(T) * (o + 1));                                          \
            grad_b_##T(args[0].data, dL_db, n, o);                                           \
            printf("ok 1\n");                                                                \
            write_array(dtype, 1, o, 0, dL_db);                                              \
            free(dL_db);                                                                     \
        } else if (strcmp(fn, "update") == 0 && count == 3) {                                \
            /* w (I, O), or with a bias b (O,): the same update */                           \
            double lr = *(double *)args[2].data;                                             \
            T *w_new = malloc(sizeof(T) * (args[0].size + 1));                               \
            update_##T(args[0].data, args[1].data, lr, w_new, args[0].size);                 \
            printf("ok 1\n");                                                                \
            write_array(dtype, args[0].ndim, args[0].dims[0], args[0].dims[1], w_new);       \
            free(w_new);                                                                     \
        } else if (strcmp(fn, "step") == 0 && count == 4 + BIAS) {                           \
            n = args[0].dims[0], i = args[0].dims[1], o = args[1].dims[1];                   \
            const T *b = BIAS ? args[2].data : NULL;                                         \
            const T *target = args[2 + BIAS].data;                                           \
            double lr = *(double *)args[3 + BIAS].data;                                      \
            T *out = malloc(sizeof(T) * (n * o + 1)), *dL_do = malloc(sizeof(T) * (n * o + 1)); \
            T *dL_dx = malloc(sizeof(T) * (n * i + 1)), *dL_dw = malloc(sizeof(T) * (i * o + 1)); \
            T *w_new = malloc(sizeof(T) * (i * o + 1));                                      \
            T *dL_db = malloc(sizeof(T) * (o + 1)), *b_new = malloc(sizeof(T) * (o + 1));    \
            forward_##T(args[0].data, args[1].data, b, out, n, i, o);                        \
            T loss = loss_##T(out, target, n * o);                                           \
            loss_grad_##T(out, target, dL_do, n * o);                                        \
            grad_x_##T(dL_do, args[1].data, dL_dx, n, i, o);                                 \
            grad_w_##T(args[0].data, dL_do, dL_dw, n, i, o);                                 \
            update_##T(args[1].data, dL_dw, lr, w_new, i * o);                               \
            printf("ok %d\n", 4 + 2 * BIAS);                                                 \
            write_array(dtype, 0, 0, 0, &loss);                                              \
            write_array(dtype, 2, n, i, dL_dx);                                              \
            write_array(dtype, 2, i, o, dL_dw);                                              \
            if (b) {                                                                         \
                grad_b_##T(dL_do, dL_db, n, o);                                              \
                update_##T(b, dL_db, lr, b_new, o);                                          \
                write_array(dtype, 1, o, 0, dL_db);                                          \
            }                                                                                \
            write_array(dtype, 2, i, o, w_new);                                              \
            if (b) write_array(dtype, 1, o, 0, b_new);                                       \
            free(out), free(dL_do), free(dL_dx), free(dL_dw), free(w_new);                   \
            free(dL_db), free(b_new);                                                        \
        } else {                                                                             \
            return -1;                                                                       \
        }                                                                                    \
        return 0;                                                                            \
    }

LAYER(float)
LAYER(double)

int main(void) {
    printf(GREETING);
    fflush(stdout);
    char line[256], fn[64];
    int count;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "call %63s %d", fn, &count) != 2 || count < 0 || count > MAX_ARGS) {
            fprintf(stderr, "c_layer: not a call: %s", line);
            return 2;
        }
        Array args[MAX_ARGS];
        for (int k = 0; k < count; k++) {
            if (read_array(&args[k]) != 0) {
                fprintf(stderr, "c_layer: bad array in %s\n", fn);
                return 2;
            }
        }
        const char *dtype = count > 0 ? args[0].dtype : "";
        int status;
        if (strcmp(dtype, "float32") == 0) status = call_float(fn, args, count, dtype);
        else if (strcmp(dtype, "float64") == 0) status = call_double(fn, args, count, dtype);
        else status = -3;
        if (status == -1) reply_error("unknown function or wrong number of arguments");
        else if (status == -2) reply_error("shapes do not match: w must be (I, O)");
        else if (status == -3) reply_error("this layer computes in float32 and float64 only");
        else
            for (int k = 0; k < count; k++) /* every argument back, as the call left it */
                write_array(args[k].dtype, args[k].ndim, args[k].dims[0], args[k].dims[1],
                            args[k].data);
        fflush(stdout);
        for (int k = 0; k < count; k++) free(args[k].data);
    }
    return 0;
}
