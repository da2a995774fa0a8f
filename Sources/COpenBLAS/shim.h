#include <cblas.h>

/* Stops OpenBLAS's worker threads; the next threaded call starts them again. Exported by
   libopenblas (it runs at fork and at exit) but not declared in cblas.h. */
void blas_thread_shutdown_(void);
