/*
 * neoc_runtime.h: the C API of neoc-runtime, which loads and runs `.neo` artifacts
 * compiled by neoc. Link with libneoc_runtime_c.a (add -lpthread -ldl -lm) or
 * libneoc_runtime_c.so (built by `cargo build --release -p neoc-runtime-c`).
 *
 * Errors: every function that can fail returns a neoc_status; NEOC_OK is 0. The message of
 * the last failed call on the calling thread is neoc_last_error(). Nothing unwinds into C:
 * a bug inside the runtime is caught and returned as NEOC_ERR_PANIC.
 *
 * Threads: a loaded model may be run from several threads at once (neoc_model_run,
 * neoc_model_run_alloc); neoc_model_set_threads and neoc_model_free must not overlap any
 * other call on the same model.
 *
 * Buffers: tensors are dense, row-major, in the dtype of their signature (ONNX codes:
 * 1 float32, 2 uint8, 3 int8, 5 int16, 6 int32, 7 int64, 9 bool, 10 float16, 11 float64),
 * aligned to their element size (malloc'd memory always is). String tensors are not
 * passed through the C API (NEOC_ERR_UNSUPPORTED).
 *
 * tests/capi.rs checks that this header declares exactly the functions of
 * runtime/capi/src/lib.rs, with the same types, and runs examples/classify.c.
 */
#ifndef NEOC_RUNTIME_H
#define NEOC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum neoc_status {
    NEOC_OK = 0,
    /* a NULL pointer, an index out of range, a buffer of the wrong size, a non-UTF-8 string,
       or inputs that fail the model's checks (count, dtype, shape, alignment) */
    NEOC_ERR_INVALID_ARGUMENT = 1,
    /* the file cannot be read, or executable memory cannot be mapped */
    NEOC_ERR_IO = 2,
    /* not an artifact, corrupt (checksum), or a format version newer than this runtime */
    NEOC_ERR_FORMAT = 3,
    /* cannot run here: another ISA, missing CPU features, a newer kernel ABI, a runtime
       feature this build lacks, no such code variant, or (CUDA artifacts) no driver, no
       GPU, or a GPU or driver too old for the artifact */
    NEOC_ERR_INCOMPATIBLE = 4,
    /* the compiled code reported an error while running (or a CUDA call failed) */
    NEOC_ERR_RUN = 5,
    NEOC_ERR_OUT_OF_MEMORY = 6,
    /* string tensors */
    NEOC_ERR_UNSUPPORTED = 7,
    /* a bug in neoc-runtime, caught at the boundary */
    NEOC_ERR_PANIC = 8
} neoc_status;

typedef struct neoc_model neoc_model;
typedef struct neoc_outputs neoc_outputs;

/* One input's or output's signature; the pointers live as long as the model. */
typedef struct neoc_tensor_info {
    const char *name;
    int32_t dtype;          /* ONNX TensorProto.DataType code */
    size_t rank;
    const int64_t *shape;   /* rank dimensions */
    size_t byte_size;       /* bytes of its dense buffer (0 for strings) */
} neoc_tensor_info;

/* The runtime's version, e.g. "0.1.0". */
const char *neoc_version(void);
/* The message of the last failed call on this thread ("" if none); valid until the next
   failing call on this thread. */
const char *neoc_last_error(void);
/* "NEOC_OK", "NEOC_ERR_IO", ... */
const char *neoc_status_name(neoc_status status);

/* Memory-maps and loads an artifact; checks its checksum, format, ISA and CPU features.
   The file must not change while the model is loaded. */
neoc_status neoc_model_load(const char *path, neoc_model **out);
/* As neoc_model_load, running the named code variant of a portable artifact
   ("x86-64-v3"); NULL picks the best the CPU supports. */
neoc_status neoc_model_load_variant(const char *path, const char *code_variant, neoc_model **out);
/* Loads an artifact from memory (the bytes are copied). */
neoc_status neoc_model_load_bytes(const void *data, size_t len, neoc_model **out);
/* Frees a model (NULL is ignored). */
void neoc_model_free(neoc_model *model);

size_t neoc_model_input_count(const neoc_model *model);
size_t neoc_model_output_count(const neoc_model *model);
neoc_status neoc_model_input_info(const neoc_model *model, size_t index, neoc_tensor_info *out);
neoc_status neoc_model_output_info(const neoc_model *model, size_t index, neoc_tensor_info *out);
/* The code variant that runs, or NULL for an artifact with one code section. */
const char *neoc_model_code_variant(const neoc_model *model);

/* Intra-op threads (0 is taken as 1; default: the physical cores). */
neoc_status neoc_model_set_threads(neoc_model *model, size_t threads);
size_t neoc_model_threads(const neoc_model *model);

/* Runs the model into caller buffers: inputs[i] holds input_sizes[i] bytes of input i,
   outputs[i] has room for output_sizes[i] bytes of output i (each size must equal the
   signature's byte_size). Allocates nothing once the model is loaded. */
neoc_status neoc_model_run(const neoc_model *model,
                           const void *const *inputs, const size_t *input_sizes, size_t n_inputs,
                           void *const *outputs, const size_t *output_sizes, size_t n_outputs);
/* Runs the model into outputs the runtime allocates; free them with neoc_outputs_free. */
neoc_status neoc_model_run_alloc(const neoc_model *model,
                                 const void *const *inputs, const size_t *input_sizes, size_t n_inputs,
                                 neoc_outputs **out);
size_t neoc_outputs_count(const neoc_outputs *outputs);
/* Output `index`'s bytes (and their count in *byte_size if not NULL), or NULL. */
const void *neoc_outputs_data(const neoc_outputs *outputs, size_t index, size_t *byte_size);
void neoc_outputs_free(neoc_outputs *outputs);

#ifdef __cplusplus
}
#endif

#endif /* NEOC_RUNTIME_H */
