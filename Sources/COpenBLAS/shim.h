// OpenBLAS from Debian's libopenblas-dev: CBLAS plus the LAPACK routines FuseKit calls through the
// Fortran ABI (libopenblas exports them; Debian's build has no LAPACKE).
#include <cblas.h>

// Singular value decomposition, divide and conquer (column-major, Fortran calling convention).
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info);
// Symmetric positive definite solve (Cholesky), used by RegMean.
void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, float *b,
            const int *ldb, int *info);
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info);
// General solve with partial pivoting.
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info);
// Symmetric eigen decomposition (CMA-ES covariance).
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);
char *openblas_get_corename(void);
char *openblas_get_config(void);
