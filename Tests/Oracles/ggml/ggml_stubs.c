// Minimal stand-ins for the four ggml.c symbols that ggml-quants.c references.
// None of them is reached by the quantize_row_*_ref functions used by the oracle.
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "ggml.h"

void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "GGML_ABORT %s:%d: ", file, line);
    va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap);
    fputc('\n', stderr);
    abort();
}
size_t ggml_type_size(enum ggml_type type) { (void)type; fprintf(stderr, "ggml_type_size stub called\n"); abort(); }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void)type; (void)ne; fprintf(stderr, "ggml_row_size stub called\n"); abort(); }
const char * ggml_type_name(enum ggml_type type) { (void)type; return "?"; }
