/*
 * .npy files (format 1.0 written; 1.0 to 3.0 read; little-endian, C order) for neo_host.
 *
 * A tensor's bytes are the artifact's: dense, little-endian. Types NumPy has a dtype for
 * use it ('<f4', '|b1', ...); bf16 and the 8-bit floats are '|V2' and '|V1' (raw
 * elements, as ml_dtypes arrays save); the packed 4- and 2-bit types are their packed
 * bytes as a 1-D '|u1' array.
 */
#include "neo_host.h"

/* The descr of ONNX dtype `code`, and whether it is packed (shape = [bytes]). */
static const char *descr_of(uint32_t code, int *packed) {
    static const char *const d[27] = {
        "", "<f4", "|u1", "|i1", "<u2", "<i2", "<i4", "<i8", "", "|b1", "<f2", "<f8", "<u4", "<u8", "<c8", "<c16",
        "|V2", "|V1", "|V1", "|V1", "|V1", "|u1", "|u1", "|u1", "|V1", "|u1", "|u1",
    };
    *packed = (code >= 21 && code <= 23) || code == 25 || code == 26;
    return code < 27 ? d[code] : "";
}

/* The text after `'key':` in a header dict (NULL when absent). */
static const char *field(const char *h, const char *key) {
    char k[32];
    snprintf(k, sizeof k, "'%s'", key);
    const char *p = strstr(h, k);
    if (!p) return NULL;
    p += strlen(k);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

uint8_t *read_raw(const char *path, const sig *s) {
    size_t len;
    const uint8_t *b = map_file(path, &len);
    if (len != s->bytes) die(1, "%s: %zu bytes, input '%s' has %zu", path, len, s->name, s->bytes);
    uint8_t *out = NULL;
    if (posix_memalign((void **)&out, 64, len ? len : 64)) die(1, "out of memory");
    memcpy(out, b, len);
    return out;
}

void write_raw(const char *path, const sig *s, const uint8_t *data) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, s->bytes, f) != s->bytes || fclose(f)) die(1, "cannot write %s", path);
}

uint8_t *read_npy(const char *path, const sig *s) {
    size_t len;
    const uint8_t *b = map_file(path, &len);
    if (len < 10 || memcmp(b, "\x93NUMPY", 6)) die(1, "%s: not a .npy file", path);
    size_t hl, start;
    if (b[6] == 1) hl = b[8] | b[9] << 8, start = 10;
    else if ((b[6] == 2 || b[6] == 3) && len >= 12) hl = b[8] | b[9] << 8 | b[10] << 16 | (size_t)b[11] << 24, start = 12;
    else die(1, "%s: unsupported .npy version %u", path, b[6]);
    if (start + hl > len) die(1, "%s: truncated .npy header", path);
    char *h = calloc(hl + 1, 1);
    memcpy(h, b + start, hl);
    int packed;
    const char *want = descr_of(s->dtype, &packed), *d = field(h, "descr"), *f = field(h, "fortran_order"), *sh = field(h, "shape");
    if (!d || !f || !sh || *d != '\'' || *sh != '(') die(1, "%s: malformed .npy header", path);
    if (strncmp(d + 1, want, strlen(want)) || d[1 + strlen(want)] != '\'')
        die(1, "%s: dtype %.8s, but input '%s' is %s", path, d, s->name, want);
    if (!strncmp(f, "True", 4)) die(1, "%s: Fortran-order .npy files are not supported", path);
    uint64_t dims[32];
    size_t rank = 0;
    for (const char *p = sh + 1; *p && *p != ')';) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || rank == 32) die(1, "%s: malformed shape", path);
        dims[rank++] = v;
        p = end;
    }
    int same = packed ? rank == 1 && dims[0] == s->bytes : rank == s->rank;
    for (size_t a = 0; same && !packed && a < rank; a++) same = dims[a] == s->dims[a];
    if (!same) die(1, "%s: shape does not match input '%s'", path, s->name);
    if (len - start - hl != s->bytes) die(1, "%s: %zu data bytes, input '%s' has %zu", path, len - start - hl, s->name, s->bytes);
    uint8_t *out = NULL;
    if (posix_memalign((void **)&out, 64, s->bytes ? s->bytes : 64)) die(1, "out of memory");
    memcpy(out, b + start + hl, s->bytes);
    free(h);
    return out;
}

void write_npy(const char *dir, const sig *s, const uint8_t *data) {
    char path[4096], name[1024];
    size_t n = 0;
    for (const char *c = s->name; *c && n + 1 < sizeof name; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.';
        name[n++] = ok ? *c : '_';
    }
    name[n] = 0;
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    int packed;
    const char *d = descr_of(s->dtype, &packed);
    char shape[1024] = "(";
    size_t at = 1;
    if (packed) at += snprintf(shape + at, sizeof shape - at, "%zu,", s->bytes);
    else
        for (uint32_t a = 0; a < s->rank && at < sizeof shape; a++)
            at += snprintf(shape + at, sizeof shape - at, s->rank == 1 ? "%llu," : a ? ", %llu" : "%llu", (unsigned long long)s->dims[a]);
    snprintf(shape + at, sizeof shape - at, ")");
    char header[2048];
    int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", d, shape);
    size_t unpadded = 10 + hl + 1, pad = (64 - unpadded % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) die(1, "cannot write %s", path);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)((hl + pad + 1) & 0xff), (uint8_t)((hl + pad + 1) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, hl, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    if (fwrite(data, 1, s->bytes, f) != s->bytes || fclose(f)) die(1, "cannot write %s", path);
}
