/* The L2 cache size, which sizes the channel blocks
 * (roipool._config.block_budget). */
#ifndef ROIPOOL_SIMD_CACHE_H
#define ROIPOOL_SIMD_CACHE_H

#include <stdio.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

#if defined(__linux__)
/* sysfs: the first level-2 data or unified cache of cpu0 ("1024K"). glibc
 * answers sysconf from CPUID on x86 only; on aarch64 it gives 0. */
static long roipool_l2_from_sysfs(void)
{
    char path[96], buf[32];
    int i;
    for (i = 0; i < 16; ++i) {
        FILE *f;
        long level = 0, size = 0;
        char unit = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!(f = fopen(path, "r"))) break;
        if (fscanf(f, "%ld", &level) != 1) level = 0;
        fclose(f);
        if (level != 2) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!(f = fopen(path, "r"))) continue;
        buf[0] = 0;
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
        if (strncmp(buf, "Data", 4) != 0 && strncmp(buf, "Unified", 7) != 0) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if (!(f = fopen(path, "r"))) continue;
        if (fscanf(f, "%ld%c", &size, &unit) < 1) size = 0;
        fclose(f);
        if (unit == 'K') size <<= 10;
        else if (unit == 'M') size <<= 20;
        return size > 0 ? size : 0;
    }
    return 0;
}
#endif

/* L2 cache bytes per core (per cluster on Apple silicon), else 0: the C
 * library (glibc on x86), then sysfs (Linux, e.g. aarch64), sysctl (macOS:
 * the performance cores' L2 where there are levels, else hw.l2cachesize). */
static long roipool_l2_cache_bytes(void)
{
    long v = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (v > 0) return v;
#endif
#if defined(__linux__)
    v = roipool_l2_from_sysfs();
#elif defined(__APPLE__)
    {
        int64_t n = 0;
        size_t len = sizeof n;
        if (sysctlbyname("hw.perflevel0.l2cachesize", &n, &len, NULL, 0) != 0 || n <= 0) {
            n = 0;
            len = sizeof n;
            if (sysctlbyname("hw.l2cachesize", &n, &len, NULL, 0) != 0) n = 0;
        }
        v = n > 0 ? (long)n : 0;
    }
#endif
    return v > 0 ? v : 0;
}

#endif /* ROIPOOL_SIMD_CACHE_H */
