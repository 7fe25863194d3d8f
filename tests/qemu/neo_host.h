/* neo_host: what its files share (see neo_host.c). */
#ifndef NEO_HOST_H
#define NEO_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A tensor signature: name, ONNX dtype code, shape, and its byte length in compiled memory. */
typedef struct {
    char *name;
    uint32_t dtype;
    uint32_t rank;
    uint64_t *dims;
    size_t bytes;
} sig;

/* The metadata section (runtime/src/artifact.rs, "Metadata encoding"). */
typedef struct {
    char *target, *isa, *call_conv;
    char **features;
    size_t n_features;
    sig *inputs, *outputs;
    size_t n_inputs, n_outputs;
    uint64_t arena_size, entry_offset;
    uint32_t kernel_abi_version;
    char **runtime_features;
    size_t n_runtime_features;
} meta;

/* One code variant of a format version 5 (or 2) artifact (runtime/src/variants.rs). */
typedef struct {
    char *name;
    char **features;
    size_t n_features;
    uint64_t entry_offset;
    size_t code_off, code_len;
} variant;

typedef struct {
    uint32_t format_version;
    char *neoc_version;
    uint64_t checksum;
    meta meta;
    size_t code_off, code_len, weights_off, weights_len;
    variant *variants;
    size_t n_variants;
} artifact;

/* neo_format.c: parses and validates `bytes` as Artifact::parse does. Returns NULL, or the
 * name of the Rust FormatError variant with its message in `err`. */
const char *parse_artifact(const uint8_t *bytes, size_t len, artifact *a, char *err, size_t err_len);
/* Prints what --inspect prints. */
void print_artifact(const artifact *a);
uint64_t xxh64(const uint8_t *p, size_t len, uint64_t seed, size_t zero_at);

/* neo_npy.c: an input of signature `s` from a .npy file (64-byte aligned memory), and an
 * output written to DIR/<name>.npy. */
uint8_t *read_npy(const char *path, const sig *s);
void write_npy(const char *dir, const sig *s, const uint8_t *data);
/* Raw tensors: exactly the bytes of compiled memory (any dtype, packed types packed). */
uint8_t *read_raw(const char *path, const sig *s);
void write_raw(const char *path, const sig *s, const uint8_t *data);

/* neo_host.c: the file's bytes (read-only mapping; page-aligned). */
const uint8_t *map_file(const char *path, size_t *len);
/* Prints "neo_host: <message>" and exits with `code`. */
void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

#endif
