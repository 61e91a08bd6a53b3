# Run-time facts and knobs of the extension: build, OpenMP, SIMD path, tuning.
# Included by _roi_pool.pyx (see _plan.pxi for the shared machinery).

cdef extern from *:
    """
    #ifndef ROIPOOL_BUILD_FLAGS
    #define ROIPOOL_BUILD_FLAGS "unknown"
    #endif
    #if defined(__clang__)
    #define ROIPOOL_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define ROIPOOL_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define ROIPOOL_COMPILER "msvc"
    #else
    #define ROIPOOL_COMPILER "unknown"
    #endif
    #ifdef _OPENMP
    #define ROIPOOL_OPENMP_VERSION _OPENMP
    #else
    #define ROIPOOL_OPENMP_VERSION 0
    #endif
    """
    const char *ROIPOOL_BUILD_FLAGS
    const char *ROIPOOL_COMPILER
    int ROIPOOL_OPENMP_VERSION


def build_info():
    """Compiler, flags and OpenMP version (yyyymm, 0 without) of this build."""
    return {
        "compiler": ROIPOOL_COMPILER.decode(),
        "flags": ROIPOOL_BUILD_FLAGS.decode(),
        "openmp_version": ROIPOOL_OPENMP_VERSION,
    }


def omp_max_threads():
    """omp_get_max_threads() for the calling thread (1 without OpenMP): it
    honours OMP_NUM_THREADS and threadpoolctl limits."""
    return omp_get_max_threads()


def omp_pause():
    """Free the calling thread's OpenMP worker pool (GNU libgomp; the next
    parallel region starts a new one). Runs before os.fork(): see __init__.py."""
    return roipool_omp_pause()


def openmp_enabled():
    """True when the extension was compiled with OpenMP.

    Without OpenMP (a compiler that lacks it) every call runs on one thread.

    Returns
    -------
    bool

    Examples
    --------
    >>> import roipool
    >>> isinstance(roipool.openmp_enabled(), bool)
    True
    """
    return bool(ROIPOOL_OPENMP)


def isa_names():
    """The SIMD paths' names by id, from the C list (simd/dispatch.h), including
    those this build or CPU lacks."""
    return tuple(roipool_isa_names[i].decode() for i in range(ROIPOOL_ISA_COUNT))


def isa_supported(int level):
    """True when this build has the path of that id (an index of isa_names())
    and the CPU runs it."""
    return bool(roipool_isa_supported(level))


def get_isa():
    """The name of the SIMD path in use: that of the active kernel table."""
    return roipool_kernels.name.decode()


def set_isa(int level):
    """Select the SIMD path of that id, falling back to the best supported
    one below it in its family; returns the id in use."""
    return roipool_set_isa(level)


def l2_cache_bytes():
    """L2 cache size the C library reports (0 when unknown)."""
    return roipool_l2_cache_bytes()


def ring_plans():
    """How many RoIAlign forward calls have read the map through a ring of
    rows (_align_ring) in this process."""
    return _ring_plans


def _set_tuning(Py_ssize_t cache_budget=-1, Py_ssize_t max_block=-1,
                Py_ssize_t stream_bytes=-1):
    """Tuning knobs (set at import, and by benchmarks and tests): bytes of a
    gathered block, max channels per block, output size above which stores
    are streamed; -1 keeps a value. Not for use while calls are running.
    Returns the values in effect."""
    global _cache_budget, _max_block, _stream_bytes
    if cache_budget >= 0:
        _cache_budget = cache_budget
    if max_block >= 0:
        _max_block = max(1, max_block)
    if stream_bytes >= 0:
        _stream_bytes = stream_bytes
    return _cache_budget, _max_block, _stream_bytes
