/*
 * neo_host: runs a neoc aarch64 artifact (.neo) without the Rust runtime.
 *
 * A static C program (aarch64-linux-gnu-gcc -static -O2 -pthread) that reads the same
 * file the Rust runtime reads (runtime/src/artifact/, format versions 1, 2, 4 and 5), verifies
 * it as the runtime does (magic, versions, length, XXH64 checksum, header, sections,
 * metadata, code variants; then ISA, calling convention, CPU features from the auxiliary
 * vector, kernel ABI version), maps its code executable, provides the runtime services
 * (parallel_for on pthreads, memcpy, memset, and the C library's scalar math functions as
 * math_f32/math_f64: runtime/src/abi/mod.rs SERVICES) and runs it on .npy inputs, writing
 * .npy outputs. Every other kernel-table entry is a trap: an artifact for aarch64 calls no
 * GEMM, convolution, pooling, codec or string kernel (its own code computes those), and
 * one that did would stop here, named.
 *
 *   neo_host MODEL.neo --inspect
 *   neo_host MODEL.neo [--input NAME=FILE.npy]... [--output-dir DIR] [--threads N] [--runs N] [--raw]
 *
 * An input file whose name ends in .raw holds the tensor's bytes as compiled memory holds
 * them (any dtype); with --raw, outputs are written so too, as DIR/output_<index>.raw
 * (neoc's Rust side uses these: `neoc run --qemu`, `neoc conformance --backend qemu`).
 * With --runs N the code runs N times and the mean time of one run goes to stderr.
 *
 * --inspect checks the format only (no host checks) and prints the artifact's description,
 * or "error <Kind>: <message>" with the Rust runtime's FormatError variant as Kind.
 * Exit status: 0 ok, 1 usage or I/O, 2 format error, 3 load error, 4 the code returned
 * an error status, 5 the code called a kernel this host does not provide.
 *
 * Files: neo_host.c (this: loading, services, main), neo_format.c (the format checks),
 * neo_npy.c (.npy files), neo_host.h (what they share).
 */
#include "neo_host.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* ---- the run context and the kernel table (runtime/src/abi) ---- */

typedef int32_t (*task_fn)(void *task_ctx, size_t begin, size_t end);

typedef struct {
    const uint8_t *const *inputs;
    uint8_t *const *outputs;
    uint8_t *arena;
    const uint8_t *weights;
    const void *kernels;
    size_t thread_count;
    void *strings;
    const void *workers;
} run_context;

/* Entries in table order (runtime/src/abi/table.rs); the three services first by need. */
static const char *const KERNEL_NAMES[] = {
    "sgemm", "parallel_for", "memcpy", "memset", "math_f32", "math_f64", "conv", "pool",
    "low_decode", "low_encode", "strings", "sgemm_epilogue", "sgemm_packed_b",
};
#define N_KERNELS (sizeof KERNEL_NAMES / sizeof KERNEL_NAMES[0])
/* The newest kernel ABI whose table this host builds (KERNEL_ABI_VERSION). Version 7
 * added activations to the conv and GEMM kernels, which this host does not provide
 * (their slots are traps, as for every numeric kernel), so its table is version 6's. */
#define HOST_KERNEL_ABI 8

typedef struct {
    uint32_t version;
    uint32_t reserved;
    void *entries[N_KERNELS];
} kernel_table;

typedef struct {
    task_fn task;
    void *task_ctx;
    size_t begin, end;
    int32_t status;
} task_range;

static void *run_range(void *p) {
    task_range *r = p;
    r->status = r->task(r->task_ctx, r->begin, r->end);
    return NULL;
}

/* parallel_for: 0..n in contiguous ranges over at most thread_count threads, the calling
 * thread taking the first; every range runs; the first non-zero status (in range order)
 * is returned. A range whose thread cannot be started runs on the calling thread. */
static int32_t svc_parallel_for(const run_context *ctx, size_t n, task_fn task, void *task_ctx) {
    size_t threads = ctx && ctx->thread_count > 0 ? ctx->thread_count : 1;
    if (threads > n) threads = n ? n : 1;
    if (threads > 64) threads = 64;
    task_range ranges[64];
    pthread_t ids[64];
    int started[64] = {0};
    for (size_t t = 0; t < threads; t++) {
        ranges[t] = (task_range){task, task_ctx, n * t / threads, n * (t + 1) / threads, 0};
    }
    for (size_t t = 1; t < threads; t++) started[t] = pthread_create(&ids[t], NULL, run_range, &ranges[t]) == 0;
    run_range(&ranges[0]);
    for (size_t t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run_range(&ranges[t]);
    }
    for (size_t t = 0; t < threads; t++)
        if (ranges[t].status) return ranges[t].status;
    return 0;
}

static void svc_memcpy(uint8_t *dst, const uint8_t *src, size_t n) { memcpy(dst, src, n); }

/* math_f32 / math_f64: one scalar function of the C library by MathOp code
 * (runtime/src/abi/mod.rs), in double and rounded once, as runtime/src/kernels/math.rs
 * computes them (Rust's f64 functions are the C library's on Linux; erf is glibc's here). */
static double math(uint32_t op, double a, double b) {
    switch (op) {
    case 0: return exp(a);
    case 1: return log(a);
    case 2: return tanh(a);
    case 3: return erf(a);
    case 4: return sin(a);
    case 5: return cos(a);
    case 6: return tan(a);
    case 7: return asin(a);
    case 8: return acos(a);
    case 9: return atan(a);
    case 10: return sinh(a);
    case 11: return cosh(a);
    case 12: return asinh(a);
    case 13: return acosh(a);
    case 14: return atanh(a);
    case 15: return pow(a, b);
    case 16: return fmod(a, b);
    case 17: return a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a));
    case 18: return a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
    case 19: return expm1(a);
    case 20: return log1p(a);
    default: return NAN;
    }
}
static float svc_math_f32(uint32_t op, float a, float b) { return (float)math(op, a, b); }
static double svc_math_f64(uint32_t op, double a, double b) { return math(op, a, b); }
static void svc_memset(uint8_t *dst, int32_t value, size_t n) { memset(dst, value, n); }

/* One trap per non-service entry, so the message can name it. */
static void trap(size_t i) {
    fprintf(stderr, "neo_host: the artifact called the runtime kernel '%s', which this host does not provide "
                    "(aarch64 artifacts call only parallel_for, memcpy, memset, math_f32 and math_f64)\n", KERNEL_NAMES[i]);
    exit(5);
}
#define TRAP(i) static void trap_##i(void) { trap(i); }
TRAP(0) TRAP(6) TRAP(7) TRAP(8) TRAP(9) TRAP(10) TRAP(11) TRAP(12)

static kernel_table TABLE = {
    HOST_KERNEL_ABI, 0,
    {(void *)trap_0, (void *)svc_parallel_for, (void *)svc_memcpy, (void *)svc_memset, (void *)svc_math_f32, (void *)svc_math_f64,
     (void *)trap_6, (void *)trap_7, (void *)trap_8, (void *)trap_9, (void *)trap_10, (void *)trap_11, (void *)trap_12},
};

/* ---- host checks (runtime/src/host.rs HostCpu::check) ---- */

/* Whether this CPU has `feature` (Rust's name), from the auxiliary vector. */
static int has_feature(const char *f) {
#if defined(__aarch64__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    /* Rust's std_detect names on Linux (some need several HWCAP bits). */
    static const struct { const char *name; int word; unsigned long mask; } bits[] = {
        {"neon", 1, 3UL}, {"aes", 1, 3UL << 3}, {"sha2", 1, 3UL << 5}, {"crc", 1, 1UL << 7}, {"lse", 1, 1UL << 8},
        {"fp16", 1, 3UL << 9}, {"rdm", 1, 1UL << 12}, {"jsconv", 1, 1UL << 13}, {"fcma", 1, 1UL << 14},
        {"rcpc", 1, 1UL << 15}, {"sha3", 1, (1UL << 17) | (1UL << 21)}, {"dotprod", 1, 1UL << 20}, {"sve", 1, 1UL << 22},
        {"fhm", 1, 1UL << 23}, {"lse2", 1, 1UL << 25}, {"rcpc2", 1, 1UL << 26}, {"sve2", 2, 1UL << 1},
        {"frintts", 2, 1UL << 8}, {"f32mm", 2, 1UL << 10}, {"f64mm", 2, 1UL << 11}, {"i8mm", 2, 1UL << 13},
        {"bf16", 2, 1UL << 14},
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (!strcmp(bits[i].name, f)) return ((bits[i].word == 1 ? hw : hw2) & bits[i].mask) == bits[i].mask;
    return 0;
#else
    (void)f;
    return 0;
#endif
}

/* The variant to run (variants.rs `choose`): the last whose features the CPU has. */
static int choose_variant(const artifact *a) {
    for (int i = (int)a->n_variants - 1; i >= 0; i--) {
        int ok = 1;
        for (size_t j = 0; j < a->variants[i].n_features; j++) ok &= has_feature(a->variants[i].features[j]);
        if (ok) return i;
    }
    return -1;
}

/* Exits 3 with the runtime's LoadError message when the artifact cannot run here. */
static void check_host(artifact *a) {
#if defined(__aarch64__)
    const char *arch = "aarch64";
#else
    const char *arch = "unknown";
#endif
    if (strcmp(a->meta.isa, arch)) die(3, "artifact is for %s, this machine is %s", a->meta.isa, arch);
    if (a->n_variants) {
        int v = choose_variant(a);
        if (v < 0) die(3, "no code variant of the artifact runs on this CPU");
        a->meta.entry_offset = a->variants[v].entry_offset;
        a->code_off = a->variants[v].code_off;
        a->code_len = a->variants[v].code_len;
        a->meta.features = a->variants[v].features;
        a->meta.n_features = a->variants[v].n_features;
    }
    if (strcmp(a->meta.call_conv, "system_v")) die(3, "artifact uses calling convention %s, this machine system_v", a->meta.call_conv);
    for (size_t i = 0; i < a->meta.n_features; i++)
        if (!has_feature(a->meta.features[i])) die(3, "artifact needs CPU feature %s, which this CPU lacks", a->meta.features[i]);
    if (a->meta.kernel_abi_version > HOST_KERNEL_ABI)
        die(3, "artifact needs kernel ABI version %u, this host provides %u", a->meta.kernel_abi_version, HOST_KERNEL_ABI);
    if (a->meta.n_runtime_features) die(3, "artifact needs runtime feature %s, which this host does not have", a->meta.runtime_features[0]);
    for (size_t i = 0; i < a->meta.n_inputs + a->meta.n_outputs; i++) {
        const sig *s = i < a->meta.n_inputs ? &a->meta.inputs[i] : &a->meta.outputs[i - a->meta.n_inputs];
        if (s->dtype == 8) die(3, "'%s' is a string tensor; this host runs numeric tensors only", s->name);
    }
}

/* ---- main ---- */

void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "neo_host: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

const uint8_t *map_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(1, "cannot open %s", path);
    if (fseek(f, 0, SEEK_END)) die(1, "cannot read %s", path);
    long n = ftell(f);
    fclose(f);
    if (n < 0) die(1, "cannot read %s", path);
    *len = (size_t)n;
    if (n == 0) return (const uint8_t *)"";
    int fd = open(path, O_RDONLY);
    void *p = fd < 0 ? MAP_FAILED : mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) die(1, "cannot map %s", path);
    close(fd);
    return p;
}

static void *aligned(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) die(1, "out of memory (%zu bytes)", n);
    memset(p, 0, n);
    return p;
}

int main(int argc, char **argv) {
    const char *path = NULL, *out_dir = NULL;
    const char *in_names[256], *in_files[256];
    size_t n_in = 0, threads = 1, runs = 1;
    int inspect = 0, raw = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--inspect")) inspect = 1;
        else if (!strcmp(argv[i], "--raw")) raw = 1;
        else if (!strcmp(argv[i], "--input") && i + 1 < argc && n_in < 256) {
            char *eq = strrchr(argv[++i], '=');
            if (!eq) die(1, "--input %s should be NAME=FILE.npy", argv[i]);
            *eq = 0;
            in_names[n_in] = argv[i];
            in_files[n_in++] = eq + 1;
        } else if (!strcmp(argv[i], "--output-dir") && i + 1 < argc) out_dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else die(1, "usage: neo_host MODEL.neo [--inspect] [--input NAME=FILE.npy]... [--output-dir DIR] [--threads N] [--runs N] [--raw]");
    }
    if (!path) die(1, "usage: neo_host MODEL.neo [--inspect] [--input NAME=FILE.npy]... [--output-dir DIR] [--threads N] [--runs N] [--raw]");
    size_t len;
    const uint8_t *file = map_file(path, &len);
    artifact a;
    char err[512];
    const char *kind = parse_artifact(file, len, &a, err, sizeof err);
    if (kind) {
        if (inspect) {
            printf("error %s: %s\n", kind, err);
            return 2;
        }
        die(2, "%s: %s", path, err);
    }
    if (inspect) {
        print_artifact(&a);
        return 0;
    }
    check_host(&a);

    /* Code: copied into fresh pages (page-aligned, as adrp needs), then read+execute. */
    long page = sysconf(_SC_PAGESIZE);
    size_t code_pages = (a.code_len + page - 1) / page * page;
    uint8_t *code = mmap(NULL, code_pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) die(1, "mapping %zu bytes of code failed", a.code_len);
    memcpy(code, file + a.code_off, a.code_len);
    if (mprotect(code, code_pages, PROT_READ | PROT_EXEC)) die(1, "making the code executable failed");
    __builtin___clear_cache((char *)code, (char *)code + a.code_len);

    const meta *m = &a.meta;
    const uint8_t **ins = calloc(m->n_inputs + 1, sizeof *ins);
    uint8_t **outs = calloc(m->n_outputs + 1, sizeof *outs);
    for (size_t i = 0; i < m->n_inputs; i++) {
        size_t j = 0;
        while (j < n_in && strcmp(in_names[j], m->inputs[i].name)) j++;
        if (j == n_in) die(1, "input '%s' was not given (--input %s=FILE.npy)", m->inputs[i].name, m->inputs[i].name);
        size_t fl = strlen(in_files[j]);
        ins[i] = fl > 4 && !strcmp(in_files[j] + fl - 4, ".raw") ? read_raw(in_files[j], &m->inputs[i]) : read_npy(in_files[j], &m->inputs[i]);
    }
    for (size_t j = 0; j < n_in; j++) {
        size_t i = 0;
        while (i < m->n_inputs && strcmp(in_names[j], m->inputs[i].name)) i++;
        if (i == m->n_inputs) die(1, "the model has no input '%s'", in_names[j]);
    }
    for (size_t i = 0; i < m->n_outputs; i++) outs[i] = aligned(m->outputs[i].bytes);
    uint8_t *arena = aligned(m->arena_size);
    run_context ctx = {ins, outs, arena, file + a.weights_off, &TABLE, threads ? threads : 1, NULL, NULL};
    int32_t (*entry)(const run_context *) = (int32_t (*)(const run_context *))(void *)(code + m->entry_offset);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t r = 0; r < runs; r++) {
        int32_t status = entry(&ctx);
        if (status) die(4, "the model returned error code %d", status);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (runs > 1) fprintf(stderr, "neo_host: %zu runs, %.3f ms each\n", runs, ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / runs);
    if (out_dir)
        for (size_t i = 0; i < m->n_outputs; i++) {
            if (raw) {
                char p[4096];
                snprintf(p, sizeof p, "%s/output_%zu.raw", out_dir, i);
                write_raw(p, &m->outputs[i], outs[i]);
            } else write_npy(out_dir, &m->outputs[i], outs[i]);
        }
    return 0;
}
