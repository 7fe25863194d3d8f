/*
 * classify.c: runs a compiled digits classifier on a stack of images through the C API.
 *
 *   cc classify.c -Iinclude -L<target>/release -lneoc_runtime_c -lpthread -ldl -lm -o classify
 *   ./classify digits.neo samples.npy labels.npy
 *
 * samples.npy: float32 [N, 1, 8, 8]; labels.npy: int64 [N]. Prints, for each sample, the
 * predicted class and its probability, then the accuracy. Also shows the error path: a
 * missing file and a buffer of the wrong size each give a status and a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neoc_runtime.h"

/* Reads a little-endian .npy file (version 1 or 2 header) whose dtype descriptor is
   `descr`; returns its data and its element count, or NULL. */
static void *read_npy(const char *path, const char *descr, size_t elem, size_t *count) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[12];
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0) { fclose(f); return NULL; }
    size_t hlen = head[8] | (head[9] << 8);
    if (head[6] >= 2) {
        if (fread(head + 10, 1, 2, f) != 2) { fclose(f); return NULL; }
        hlen |= ((size_t)head[10] << 16) | ((size_t)head[11] << 24);
    }
    char *header = malloc(hlen + 1);
    if (!header || fread(header, 1, hlen, f) != hlen) { free(header); fclose(f); return NULL; }
    header[hlen] = 0;
    int ok = strstr(header, descr) != NULL && strstr(header, "'fortran_order': False") != NULL;
    free(header);
    long start = ftell(f);
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    fseek(f, start, SEEK_SET);
    if (!ok || end < start) { fclose(f); return NULL; }
    *count = (size_t)(end - start) / elem;
    void *data = malloc(*count * elem + 1);
    if (!data || fread(data, elem, *count, f) != *count) { free(data); fclose(f); return NULL; }
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s model.neo samples.npy labels.npy\n", argv[0]);
        return 2;
    }
    printf("neoc-runtime %s\n", neoc_version());

    /* The error path: a status and a message, never a crash. */
    neoc_model *missing = NULL;
    neoc_status st = neoc_model_load("/nonexistent/model.neo", &missing);
    printf("loading a missing file: %s: %s\n", neoc_status_name(st), neoc_last_error());

    neoc_model *model = NULL;
    st = neoc_model_load(argv[1], &model);
    if (st != NEOC_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[1], neoc_status_name(st), neoc_last_error());
        return 1;
    }
    neoc_model_set_threads(model, 1);
    if (neoc_model_input_count(model) != 1 || neoc_model_output_count(model) != 1) {
        fprintf(stderr, "expected one input and one output\n");
        return 1;
    }
    neoc_tensor_info in, out;
    neoc_model_input_info(model, 0, &in);
    neoc_model_output_info(model, 0, &out);
    printf("input '%s': dtype %d, rank %zu, %zu bytes; output '%s': dtype %d, %zu bytes\n",
           in.name, in.dtype, in.rank, in.byte_size, out.name, out.dtype, out.byte_size);
    if (in.dtype != 1 || out.dtype != 1) {
        fprintf(stderr, "expected float32 tensors\n");
        return 1;
    }

    size_t n_values = 0, n_labels = 0;
    float *samples = read_npy(argv[2], "'<f4'", 4, &n_values);
    int64_t *labels = read_npy(argv[3], "'<i8'", 8, &n_labels);
    size_t per = in.byte_size / 4;
    if (!samples || !labels || n_values != n_labels * per) {
        fprintf(stderr, "cannot read %s / %s as %zu-value float32 samples with int64 labels\n", argv[2], argv[3], per);
        return 1;
    }
    size_t classes = out.byte_size / 4;
    float *probs = malloc(out.byte_size);

    /* A buffer of the wrong size is refused with a message. */
    const void *bad_in[1] = { samples };
    size_t bad_size[1] = { in.byte_size - 4 };
    void *outs[1] = { probs };
    size_t out_sizes[1] = { out.byte_size };
    st = neoc_model_run(model, bad_in, bad_size, 1, outs, out_sizes, 1);
    printf("running with a short input: %s: %s\n", neoc_status_name(st), neoc_last_error());

    size_t correct = 0;
    for (size_t i = 0; i < n_labels; i++) {
        const void *ins[1] = { samples + i * per };
        size_t in_sizes[1] = { in.byte_size };
        st = neoc_model_run(model, ins, in_sizes, 1, outs, out_sizes, 1);
        if (st != NEOC_OK) {
            fprintf(stderr, "sample %zu: %s: %s\n", i, neoc_status_name(st), neoc_last_error());
            return 1;
        }
        size_t best = 0;
        for (size_t c = 1; c < classes; c++) if (probs[c] > probs[best]) best = c;
        correct += (int64_t)best == labels[i];
        printf("sample %zu: %zu %.6f label %lld\n", i, best, probs[best], (long long)labels[i]);
    }
    printf("accuracy: %zu/%zu\n", correct, n_labels);

    /* The allocating run gives the same bytes as the run into our buffer. */
    const void *ins0[1] = { samples };
    size_t in_sizes0[1] = { in.byte_size };
    neoc_outputs *alloc = NULL;
    st = neoc_model_run_alloc(model, ins0, in_sizes0, 1, &alloc);
    neoc_model_run(model, ins0, in_sizes0, 1, outs, out_sizes, 1);
    size_t got = 0;
    const void *data = st == NEOC_OK ? neoc_outputs_data(alloc, 0, &got) : NULL;
    int same = data && got == out.byte_size && memcmp(data, probs, got) == 0;
    printf("run_alloc matches run: %s\n", same ? "yes" : "no");
    neoc_outputs_free(alloc);

    neoc_model_free(model);
    free(probs);
    free(samples);
    free(labels);
    return same ? 0 : 1;
}
