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
    /* GNU libgomp keeps a thread's worker pool across fork(), but the workers
       do not exist in the child, whose next parallel region then waits for
       them forever. Freeing the pool before fork() (it is re-created by the
       next parallel region) lets the child start its own. LLVM's libomp
       re-creates its pool in a child by itself; Windows has no fork. */
    #if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
    static int roipool_omp_pause(void) { return omp_pause_resource_all(omp_pause_soft); }
    #else
    static int roipool_omp_pause(void) { return 0; }
    #endif
    """
    bint ROIPOOL_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int roipool_omp_pause() noexcept nogil
