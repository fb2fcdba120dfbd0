# OpenMP is optional: without it (a compiler lacking -fopenmp) these stubs make
# the extension build and run single-threaded, and Cython drops its prange
# pragmas by itself (they sit under #ifdef _OPENMP in the generated C).
cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define FASTGRU_OPENMP 1
    #else
        #define FASTGRU_OPENMP 0
        #define omp_get_max_threads() 1
    #endif
    """
    bint FASTGRU_OPENMP
    int omp_get_max_threads() noexcept nogil
