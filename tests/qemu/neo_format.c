/*
 * The .neo format checks, in the order runtime/src/artifact.rs (Artifact::parse,
 * Metadata::decode and validate) and runtime/src/variants.rs (decode, validate) make
 * them, so that both readers give the same verdict on the same bytes: tests/qemu.rs
 * compares them on a sample of artifacts, good and corrupt.
 */
#include "neo_host.h"

#include <stdarg.h>

/* ---- XXH64 (runtime/src/checksum.rs) ---- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t round64(uint64_t acc, uint64_t lane) { return rotl(acc + lane * P2, 31) * P1; }
static uint64_t merge64(uint64_t acc, uint64_t v) { return (acc ^ round64(0, v)) * P1 + P4; }

/* Byte i of the input, reading the 8 bytes at `zero_at` as 0 (the checksum field). */
static uint8_t byte_at(const uint8_t *p, size_t i, size_t zero_at) { return i >= zero_at && i < zero_at + 8 ? 0 : p[i]; }
static uint64_t le64_at(const uint8_t *p, size_t i, size_t z) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | byte_at(p, i + k, z);
    return v;
}

uint64_t xxh64(const uint8_t *p, size_t len, uint64_t seed, size_t zero_at) {
    size_t i = 0;
    uint64_t h;
    if (len >= 32) {
        uint64_t v[4] = {seed + P1 + P2, seed + P2, seed, seed - P1};
        for (; i + 32 <= len; i += 32)
            for (int k = 0; k < 4; k++) v[k] = round64(v[k], le64_at(p, i + 8 * k, zero_at));
        h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
        for (int k = 0; k < 4; k++) h = merge64(h, v[k]);
    } else {
        h = seed + P5;
    }
    h += len;
    for (; i + 8 <= len; i += 8) h = rotl(h ^ round64(0, le64_at(p, i, zero_at)), 27) * P1 + P4;
    if (i + 4 <= len) {
        uint64_t w = 0;
        for (int k = 3; k >= 0; k--) w = (w << 8) | byte_at(p, i + k, zero_at);
        h = rotl(h ^ (w * P1), 23) * P2 + P3;
        i += 4;
    }
    for (; i < len; i++) h = rotl(h ^ (byte_at(p, i, zero_at) * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* The artifact checksum (runtime/src/artifact/mod.rs, `checksum`): versions 1-3 hash the
   whole file; versions 4-6 hash the list of the digests of its 1 MiB chunks. */
#define CHECKSUM_CHUNK ((size_t)1 << 20)
static uint64_t artifact_checksum(const uint8_t *b, size_t len, uint32_t version) {
    if (version < 4) return xxh64(b, len, 0, 24);
    size_t chunks = (len + CHECKSUM_CHUNK - 1) / CHECKSUM_CHUNK;
    uint8_t *digests = malloc(chunks * 8);
    if (!digests) return 0; /* no memory: a mismatch, never a pass */
    for (size_t i = 0; i < chunks; i++) {
        size_t start = i * CHECKSUM_CHUNK, clen = len - start < CHECKSUM_CHUNK ? len - start : CHECKSUM_CHUNK;
        /* The checksum field lies in chunk 0; elsewhere `zero_at` past the chunk is never reached. */
        uint64_t d = xxh64(b + start, clen, 0, i == 0 ? 24 : clen);
        for (int k = 0; k < 8; k++) digests[8 * i + k] = (uint8_t)(d >> (8 * k));
    }
    uint64_t h = xxh64(digests, chunks * 8, 0, chunks * 8);
    free(digests);
    return h;
}

/* ---- helpers ---- */

static const char *fail(char *err, size_t n, const char *kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return kind;
}

static uint32_t le32(const uint8_t *b) { return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t le64(const uint8_t *b) { return le32(b) | (uint64_t)le32(b + 4) << 32; }

/* Whether b[0..n] is UTF-8; with `no_controls`, also free of control characters
 * (Rust's char::is_control: U+0000..U+001F and U+007F..U+009F). */
static int utf8_ok(const uint8_t *b, size_t n, int no_controls) {
    for (size_t i = 0; i < n;) {
        uint32_t c = b[i], need, min;
        if (c < 0x80) need = 0, min = 0;
        else if ((c & 0xE0) == 0xC0) need = 1, c &= 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) need = 2, c &= 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) need = 3, c &= 0x07, min = 0x10000;
        else return 0;
        for (uint32_t k = 1; k <= need; k++) {
            if (i + k >= n || (b[i + k] & 0xC0) != 0x80) return 0;
            c = c << 6 | (b[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        if (no_controls && (c < 0x20 || (c >= 0x7F && c <= 0x9F))) return 0;
        i += need + 1;
    }
    return 1;
}

/* A bounds-checked reader over a metadata or variants section. */
typedef struct {
    const uint8_t *b;
    size_t len, pos;
    char *err;
    size_t err_len;
    int bad;
    size_t last; /* byte length of the last string read */
    const char *prefix; /* "" for metadata, "code variants: " for the variants section */
} reader;

static int take(reader *r, size_t n, const char *what) {
    if (r->bad) return 0;
    if (r->len - r->pos < n) {
        if (r->prefix[0]) snprintf(r->err, r->err_len, "%struncated while reading %s", r->prefix, what);
        else snprintf(r->err, r->err_len, "truncated while reading %s at byte %zu", what, r->pos);
        r->bad = 1;
        return 0;
    }
    r->pos += n;
    return 1;
}
static uint32_t rd32(reader *r, const char *what) { return take(r, 4, what) ? le32(r->b + r->pos - 4) : 0; }
static uint64_t rd64(reader *r, const char *what) { return take(r, 8, what) ? le64(r->b + r->pos - 8) : 0; }
static char *rdstr(reader *r, const char *what) {
    uint32_t n = rd32(r, what);
    if (!take(r, n, what)) return NULL;
    if (!utf8_ok(r->b + r->pos - n, n, 0)) {
        snprintf(r->err, r->err_len, "%s%s is not %sUTF-8", r->prefix, what, r->prefix[0] ? "" : "valid ");
        r->bad = 1;
        return NULL;
    }
    char *s = malloc(n + 1);
    r->last = n;
    memcpy(s, r->b + r->pos - n, n);
    s[n] = 0;
    return s;
}

static const char *const X86_FEATURES[] = {
    "sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "sse4a", "popcnt", "lzcnt", "bmi1", "bmi2", "movbe",
    "cmpxchg16b", "f16c", "fma", "avx", "avx2", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl",
    "avx512ifma", "avx512vbmi", "avx512vbmi2", "avx512vnni", "avx512bitalg", "avx512vpopcntdq", "avx512bf16",
    "avx512fp16", "avxvnni", "gfni", "vaes", "vpclmulqdq", "pclmulqdq", "aes", "sha", "adx", NULL,
};
static const char *const ARM_FEATURES[] = {
    "neon", "fp16", "fhm", "fcma", "rdm", "dotprod", "i8mm", "bf16", "f32mm", "f64mm", "sve", "sve2", "crc",
    "lse", "lse2", "rcpc", "rcpc2", "aes", "sha2", "sha3", "frintts", "jsconv", NULL,
};
static int known_feature(const char *isa, const char *f) {
    for (const char *const *k = strcmp(isa, "x86_64") ? ARM_FEATURES : X86_FEATURES; *k; k++)
        if (!strcmp(*k, f)) return 1;
    return 0;
}

/* Bits per element of ONNX dtype `code` (runtime/src/dtype.rs), 0 when unknown. */
static unsigned dtype_bits(uint32_t code) {
    static const unsigned bits[27] = {0, 32, 8, 8, 16, 16, 32, 64, 64, 8, 16, 64, 32, 64, 64, 128, 16, 8, 8, 8, 8, 4, 4, 4, 8, 2, 2};
    return code >= 1 && code <= 26 ? bits[code] : 0;
}

static int read_sigs(reader *r, const char *what, sig **out, size_t *n_out) {
    char w[96];
    snprintf(w, sizeof w, "%s count", what);
    uint32_t n = rd32(r, w);
    if (r->bad) return 0;
    *out = calloc(n ? n : 1, sizeof(sig));
    *n_out = 0;
    for (uint32_t i = 0; i < n; i++) {
        sig *s = &(*out)[i];
        snprintf(w, sizeof w, "%s %u name", what, i);
        s->name = rdstr(r, w);
        snprintf(w, sizeof w, "%s %u dtype", what, i);
        s->dtype = rd32(r, w);
        if (r->bad) return 0;
        if (!dtype_bits(s->dtype)) {
            snprintf(r->err, r->err_len, "%s %u ('%s'): unknown or unsupported dtype code %u", what, i, s->name, s->dtype);
            return r->bad = 1, 0;
        }
        snprintf(w, sizeof w, "%s %u rank", what, i);
        s->rank = rd32(r, w);
        if (r->bad) return 0;
        s->dims = calloc(s->rank ? s->rank : 1, sizeof(uint64_t));
        for (uint32_t a = 0; a < s->rank; a++) {
            snprintf(w, sizeof w, "%s %u dimension %u", what, i, a);
            s->dims[a] = rd64(r, w);
            if (r->bad) return 0;
        }
        *n_out = i + 1;
    }
    return 1;
}

/* Bytes of a dense tensor of `s`, 0 with *ok = 0 when too large (tensor::byte_len). */
static size_t sig_bytes(const sig *s, int *ok) {
    unsigned __int128 n = 1;
    *ok = 1;
    for (uint32_t a = 0; a < s->rank; a++) {
        n *= s->dims[a];
        if (n > (uint64_t)-1) return *ok = 0, 0;
    }
    n *= dtype_bits(s->dtype);
    if (n > (uint64_t)-1) return *ok = 0, 0;
    n = (n + 7) / 8;
    if (n > (uint64_t)INT64_MAX) return *ok = 0, 0;
    return (size_t)n;
}

/* Metadata::decode, then Metadata::validate(code_len). */
static const char *read_meta(const uint8_t *b, size_t len, meta *m, size_t code_len, char *err, size_t n) {
    reader r = {b, len, 0, err, n, 0, 0, ""};
    memset(m, 0, sizeof *m);
    m->target = rdstr(&r, "target");
    m->isa = rdstr(&r, "ISA");
    if (r.bad) return "Metadata";
    if (strcmp(m->isa, "x86_64") && strcmp(m->isa, "aarch64"))
        return fail(err, n, "Metadata", "unknown ISA '%s' (this runtime knows x86_64 and aarch64)", m->isa);
    m->call_conv = rdstr(&r, "calling convention");
    if (r.bad) return "Metadata";
    if (strcmp(m->call_conv, "system_v") && strcmp(m->call_conv, "windows_fastcall") && strcmp(m->call_conv, "apple_aarch64"))
        return fail(err, n, "Metadata", "unknown calling convention '%s'", m->call_conv);
    uint32_t nf = rd32(&r, "CPU feature count");
    if (r.bad) return "Metadata";
    m->features = calloc(nf ? nf : 1, sizeof(char *));
    for (uint32_t i = 0; i < nf; i++) {
        char w[48];
        snprintf(w, sizeof w, "CPU feature %u", i);
        m->features[i] = rdstr(&r, w);
        if (r.bad) return "Metadata";
        m->n_features = i + 1;
    }
    if (!read_sigs(&r, "input", &m->inputs, &m->n_inputs) || !read_sigs(&r, "output", &m->outputs, &m->n_outputs)) return "Metadata";
    m->arena_size = rd64(&r, "arena size");
    m->entry_offset = rd64(&r, "entry offset");
    m->kernel_abi_version = rd32(&r, "kernel ABI version");
    if (r.bad) return "Metadata";
    if (len - r.pos >= 4) {
        uint32_t k = rd32(&r, "runtime feature count");
        if (k == 0) return fail(err, n, "Metadata", "an empty runtime feature list (writers leave it out)");
        m->runtime_features = calloc(k, sizeof(char *));
        for (uint32_t i = 0; i < k; i++) {
            char w[48];
            snprintf(w, sizeof w, "runtime feature %u", i);
            m->runtime_features[i] = rdstr(&r, w);
            if (r.bad) return "Metadata";
            m->n_runtime_features = i + 1;
        }
    }
    if (r.pos != len) return fail(err, n, "Metadata", "%zu unexpected bytes after the last field", len - r.pos);

    /* validate */
    int aarch64 = !strcmp(m->isa, "aarch64");
    int fits = !strcmp(m->call_conv, "system_v") || (!aarch64 && !strcmp(m->call_conv, "windows_fastcall")) ||
               (aarch64 && !strcmp(m->call_conv, "apple_aarch64"));
    if (!fits) return fail(err, n, "Metadata", "calling convention %s does not exist on %s", m->call_conv, m->isa);
    for (size_t i = 0; i < m->n_features; i++)
        if (!known_feature(m->isa, m->features[i]))
            return fail(err, n, "UnknownCpuFeature", "the code requires CPU feature '%s', which this runtime does not know for %s", m->features[i], m->isa);
    for (int io = 0; io < 2; io++) {
        sig *sigs = io ? m->outputs : m->inputs;
        size_t count = io ? m->n_outputs : m->n_inputs;
        for (size_t i = 0; i < count; i++) {
            int ok;
            sigs[i].bytes = sig_bytes(&sigs[i], &ok);
            if (!ok) return fail(err, n, "Metadata", "%s %zu ('%s'): shape is too large", io ? "output" : "input", i, sigs[i].name);
            for (size_t j = 0; j < i; j++)
                if (!strcmp(sigs[j].name, sigs[i].name)) return fail(err, n, "Metadata", "%s name '%s' appears twice", io ? "output" : "input", sigs[i].name);
        }
    }
    if (m->arena_size > (uint64_t)INT64_MAX) return fail(err, n, "Metadata", "arena size %llu is too large", (unsigned long long)m->arena_size);
    if (code_len == 0) return fail(err, n, "Metadata", "the code section is empty");
    if (m->entry_offset >= code_len) return fail(err, n, "Metadata", "entry offset %llu is outside the %zu-byte code section", (unsigned long long)m->entry_offset, code_len);
    if (aarch64 && m->entry_offset % 4) return fail(err, n, "Metadata", "entry offset %llu is not 4-byte aligned, as aarch64 instructions must be", (unsigned long long)m->entry_offset);
    if (m->kernel_abi_version == 0) return fail(err, n, "Metadata", "kernel ABI version 0 does not exist (versions start at 1)");
    return NULL;
}

/* variants::decode and variants::validate. */
static const char *read_variants(const uint8_t *b, size_t len, artifact *a, const size_t *code_lens, size_t n_codes, char *err, size_t n) {
    reader r = {b, len, 0, err, n, 0, 0, "code variants: "};
    int name_ok[8];
    uint32_t count = rd32(&r, "the count");
    if (r.bad) return "Metadata";
    if (count < 2 || count > 8) return fail(err, n, "Metadata", "code variants: %u variants (2 to 8)", count);
    a->variants = calloc(count, sizeof(variant));
    for (uint32_t i = 0; i < count; i++) {
        variant *v = &a->variants[i];
        char w[64];
        snprintf(w, sizeof w, "variant %u name", i);
        v->name = rdstr(&r, w);
        name_ok[i] = !r.bad && r.last > 0 && utf8_ok(r.b + r.pos - r.last, r.last, 1);
        uint32_t k = rd32(&r, "a feature count");
        if (r.bad) return "Metadata";
        v->features = calloc(k ? k : 1, sizeof(char *));
        for (uint32_t j = 0; j < k; j++) {
            snprintf(w, sizeof w, "variant %u feature %u", i, j);
            v->features[j] = rdstr(&r, w);
            if (r.bad) return "Metadata";
            v->n_features = j + 1;
        }
        v->entry_offset = rd64(&r, "an entry offset");
        if (r.bad) return "Metadata";
    }
    if (r.pos != len) return fail(err, n, "Metadata", "code variants: %zu unexpected bytes after the last variant", len - r.pos);
    a->n_variants = count;
    if (count != n_codes) return fail(err, n, "Metadata", "code variants: %u variants but %zu code sections", count, n_codes);
    for (size_t i = 0; i < count; i++) {
        variant *v = &a->variants[i];
        int bad_name = !name_ok[i];
        for (size_t j = 0; j < i; j++) bad_name |= !strcmp(a->variants[j].name, v->name);
        if (bad_name) return fail(err, n, "Metadata", "code variants: variant %zu has an empty, unprintable or repeated name", i);
        for (size_t j = 0; j < v->n_features; j++)
            if (!known_feature(a->meta.isa, v->features[j]))
                return fail(err, n, "UnknownCpuFeature", "the code requires CPU feature '%s', which this runtime does not know for %s", v->features[j], a->meta.isa);
        if (code_lens[i] == 0 || v->entry_offset >= code_lens[i])
            return fail(err, n, "Metadata", "code variants: variant '%s': entry offset is outside its code section", v->name);
        if (!strcmp(a->meta.isa, "aarch64") && v->entry_offset % 4)
            return fail(err, n, "Metadata", "code variants: variant '%s': entry offset is not 4-byte aligned", v->name);
    }
    int same = a->variants[0].n_features == a->meta.n_features && a->variants[0].entry_offset == a->meta.entry_offset;
    for (size_t j = 0; same && j < a->meta.n_features; j++) same = !strcmp(a->variants[0].features[j], a->meta.features[j]);
    if (!same) return fail(err, n, "Metadata", "code variants: variant 0 must match the metadata's CPU features and entry offset (it is the baseline)");
    return NULL;
}

/* Kind 5 (cuda) is format versions 3 and 6, which this host refuses; kind 6 (steps, the
   step table `neoc profile` reads, versions 1, 2, 4, 5) is optional and not read here: its bounds,
   alignment and overlap are checked, its contents are the Rust runtime's business. */
static const char *const SECTION_NAMES[] = {"", "metadata", "code", "weights", "variants", "cuda", "steps"};

typedef struct { int kind; uint64_t start, end; } range;
static int by_start(const void *x, const void *y) {
    const range *a = x, *b = y;
    return a->start != b->start ? (a->start < b->start ? -1 : 1) : (a->end < b->end ? -1 : a->end > b->end);
}

const char *parse_artifact(const uint8_t *b, size_t len, artifact *a, char *err, size_t n) {
    memset(a, 0, sizeof *a);
    if (len < 40) return fail(err, n, "TooShort", "file is %zu bytes, too short for the 40-byte artifact header", len);
    if (memcmp(b, "NEOC\0ART", 8)) return fail(err, n, "BadMagic", "not a neoc artifact");
    uint32_t version = le32(b + 8);
    /* Versions 4 and 5 are 1 and 2 with the chunked checksum; 3 and 6 (CUDA) are not for this host. */
    if (version > 5) return fail(err, n, "NewerVersion", "artifact format version %u is newer than this host reads (version 5)", version);
    if (version < 1 || version == 3) return fail(err, n, "UnknownVersion", "artifact format version %u is not a version this host reads", version);
    int variants_layout = version == 2 || version == 5;
    uint64_t file_len = le64(b + 16);
    if (file_len != len) return fail(err, n, "LengthMismatch", "file is %zu bytes but its header says %llu", len, (unsigned long long)file_len);
    uint64_t stored = le64(b + 24), computed = artifact_checksum(b, len, version);
    if (stored != computed)
        return fail(err, n, "ChecksumMismatch", "checksum mismatch: the header says %#018llx, the contents hash to %#018llx; the file is corrupt",
                    (unsigned long long)stored, (unsigned long long)computed);
    size_t header_len = le32(b + 12), count = le32(b + 32), ver_len = le32(b + 36);
    if (ver_len > 256) return fail(err, n, "BadHeader", "neoc version is %zu bytes long (at most 256)", ver_len);
    if (count > 16) return fail(err, n, "BadHeader", "%zu sections (at most 16)", count);
    size_t table = 40 + (ver_len + 7) / 8 * 8, expected = table + count * 24;
    if (header_len != expected || header_len > len)
        return fail(err, n, "BadHeader", "header length %zu does not match its contents (%zu bytes) or the file", header_len, expected);
    if (!utf8_ok(b + 40, ver_len, 1)) return fail(err, n, "BadHeader", "the neoc version is not printable UTF-8");
    for (size_t i = 40 + ver_len; i < table; i++)
        if (b[i]) return fail(err, n, "BadHeader", "non-zero padding after the neoc version");
    a->format_version = version;
    a->checksum = stored;
    a->neoc_version = calloc(ver_len + 1, 1);
    memcpy(a->neoc_version, b + 40, ver_len);

    int have[7] = {0};
    uint64_t off[7] = {0}, slen[7] = {0};
    uint64_t code_off[8], code_len[8];
    int code_seen[8] = {0};
    size_t n_codes = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *e = b + table + i * 24;
        uint32_t kind = le32(e), flags = le32(e + 4);
        uint64_t o = le64(e + 8), l = le64(e + 16);
        if (kind < 1 || kind > 6 || kind == 5 || (kind == 4 && !variants_layout)) return fail(err, n, "UnknownSection", "unknown section kind %u in section table entry %zu", kind, i);
        int variants = variants_layout && kind == 2;
        if (flags != 0 && !(variants && flags < 8))
            return fail(err, n, "BadHeader", "section %s has flags %#x; version %u defines none", SECTION_NAMES[kind], flags, version);
        if (!(o >= header_len && o + l >= o && o + l <= file_len))
            return fail(err, n, "SectionOutOfBounds", "section %s lies outside the file's data", SECTION_NAMES[kind]);
        uint64_t align = kind == 2 ? 4096 : kind == 3 ? 64 : 8;
        if (o % align) return fail(err, n, "SectionMisaligned", "section %s starts at %llu, which is not a multiple of %llu", SECTION_NAMES[kind], (unsigned long long)o, (unsigned long long)align);
        if (variants) {
            if (code_seen[flags]) return fail(err, n, "BadHeader", "two code sections have variant index %u", flags);
            code_seen[flags] = 1, code_off[flags] = o, code_len[flags] = l, n_codes++;
            if (flags == 0) have[2] = 1, off[2] = o, slen[2] = l;
            continue;
        }
        if (have[kind]) return fail(err, n, "DuplicateSection", "section %s appears more than once", SECTION_NAMES[kind]);
        have[kind] = 1, off[kind] = o, slen[kind] = l;
    }
    range ranges[24];
    size_t nr = 0;
    for (int k = 1; k <= (variants_layout ? 4 : 3); k++) {
        if (!have[k]) return fail(err, n, "MissingSection", "section %s is missing", SECTION_NAMES[k]);
        ranges[nr++] = (range){k, off[k], off[k] + slen[k]};
    }
    for (size_t i = 0; i < n_codes; i++)
        if (!code_seen[i]) return fail(err, n, "BadHeader", "code sections' variant indices are not 0, 1, 2, ...");
    for (size_t i = 1; i < n_codes; i++) ranges[nr++] = (range){2, code_off[i], code_off[i] + code_len[i]};
    if (have[6]) ranges[nr++] = (range){6, off[6], off[6] + slen[6]};
    range sorted[24];
    memcpy(sorted, ranges, nr * sizeof(range));
    qsort(sorted, nr, sizeof(range), by_start);
    for (size_t i = 0; i + 1 < nr; i++)
        if (sorted[i].end > sorted[i + 1].start)
            return fail(err, n, "SectionOverlap", "sections %s and %s overlap", SECTION_NAMES[sorted[i].kind], SECTION_NAMES[sorted[i + 1].kind]);
    const char *k = read_meta(b + off[1], slen[1], &a->meta, slen[2], err, n);
    if (k) return k;
    a->code_off = off[2], a->code_len = slen[2], a->weights_off = off[3], a->weights_len = slen[3];
    if (variants_layout) {
        size_t lens[8];
        for (size_t i = 0; i < n_codes; i++) lens[i] = code_len[i];
        k = read_variants(b + off[4], slen[4], a, lens, n_codes, err, n);
        if (k) return k;
        for (size_t i = 0; i < n_codes; i++) a->variants[i].code_off = code_off[i], a->variants[i].code_len = code_len[i];
    }
    return NULL;
}

static void print_list(const char *key, char **items, size_t count) {
    printf("%s", key);
    for (size_t i = 0; i < count; i++) printf(" %s", items[i]);
    printf("\n");
}

static void print_sig(const char *key, const sig *s) {
    printf("%s %s %u [", key, s->name, s->dtype);
    for (uint32_t a = 0; a < s->rank; a++) printf(a ? ",%llu" : "%llu", (unsigned long long)s->dims[a]);
    printf("]\n");
}

void print_artifact(const artifact *a) {
    const meta *m = &a->meta;
    printf("format_version %u\nneoc_version %s\nchecksum %#018llx\ntarget %s\nisa %s\ncall_conv %s\n", a->format_version,
           a->neoc_version, (unsigned long long)a->checksum, m->target, m->isa, m->call_conv);
    print_list("cpu_features", m->features, m->n_features);
    for (size_t i = 0; i < m->n_inputs; i++) print_sig("input", &m->inputs[i]);
    for (size_t i = 0; i < m->n_outputs; i++) print_sig("output", &m->outputs[i]);
    printf("arena_size %llu\nentry_offset %llu\nkernel_abi_version %u\n", (unsigned long long)m->arena_size,
           (unsigned long long)m->entry_offset, m->kernel_abi_version);
    print_list("runtime_features", m->runtime_features, m->n_runtime_features);
    printf("code %zu %zu\nweights %zu %zu\n", a->code_off, a->code_len, a->weights_off, a->weights_len);
    for (size_t i = 0; i < a->n_variants; i++) {
        const variant *v = &a->variants[i];
        printf("variant %s entry %llu code %zu %zu", v->name, (unsigned long long)v->entry_offset, v->code_off, v->code_len);
        print_list(" features", v->features, v->n_features);
    }
}
