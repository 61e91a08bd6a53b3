# One OpenMP shim: the rest of the code never branches on OpenMP.
# Without OpenMP the stubs make every parallel region run on one thread.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define ROIPOOL_OPENMP 1
    #else
    #define ROIPOOL_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint ROIPOOL_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
