/* The L2 cache size, which sizes the channel blocks
 * (roipool._config.block_budget). */
#ifndef ROIPOOL_SIMD_CACHE_H
#define ROIPOOL_SIMD_CACHE_H

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

/* L2 cache bytes per core where the C library reports it (glibc), else 0. */
static long roipool_l2_cache_bytes(void)
{
#if defined(_SC_LEVEL2_CACHE_SIZE)
    long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? v : 0;
#else
    return 0;
#endif
}

#endif /* ROIPOOL_SIMD_CACHE_H */
