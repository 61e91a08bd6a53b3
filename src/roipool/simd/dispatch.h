/* Run-time choice of the SIMD path: function pointers the kernels call
 * through, set at import (roipool._config) and by roipool.set_isa(). */
#ifndef ROIPOOL_SIMD_DISPATCH_H
#define ROIPOOL_SIMD_DISPATCH_H

#include "common.h"
#include "kernels.h"
#include "store.h"

typedef void (*roipool_roi_max_f32_fn)(const roipool_block_t *, const ptrdiff_t *, ptrdiff_t,
                                       ptrdiff_t, ptrdiff_t, ptrdiff_t, float, float *,
                                       int32_t *, int32_t *);
typedef void (*roipool_roi_max_f64_fn)(const roipool_block_t *, const ptrdiff_t *, ptrdiff_t,
                                       ptrdiff_t, ptrdiff_t, ptrdiff_t, double, double *,
                                       int32_t *, int64_t *);
typedef void (*roipool_transpose32_fn)(const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *);
typedef void (*roipool_stream32_fn)(const void *, ptrdiff_t, void *);

static roipool_roi_max_f32_fn roipool_roi_max_f32 = roipool_roi_max_f32_base;
static roipool_roi_max_f64_fn roipool_roi_max_f64 = roipool_roi_max_f64_base;
static roipool_transpose32_fn roipool_transpose32 = roipool_transpose32_base;
static roipool_stream32_fn roipool_stream32 = roipool_stream32_base;

/* ISA levels: 0 baseline, 1 AVX2, 2 AVX-512. */
static int roipool_isa_supported(int level)
{
    if (level == 0) return 1;
#if ROIPOOL_X86_DISPATCH
    __builtin_cpu_init();
    if (level == 1) return __builtin_cpu_supports("avx2");
    if (level == 2)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

static int roipool_isa_level = 0;

/* Select the path, or the best supported one below it; returns the level in
 * use. Not thread-safe by design: the Python layer calls it at import and
 * from set_isa() only. */
static int roipool_set_isa(int level)
{
#if ROIPOOL_X86_DISPATCH
    if (level == 2 && roipool_isa_supported(2)) {
        roipool_roi_max_f32 = roipool_roi_max_f32_avx512;
        roipool_roi_max_f64 = roipool_roi_max_f64_avx512;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 2;
    }
    if (level >= 1 && roipool_isa_supported(1)) {
        roipool_roi_max_f32 = roipool_roi_max_f32_avx2;
        roipool_roi_max_f64 = roipool_roi_max_f64_avx2;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 1;
    }
#endif
    (void)level;
    roipool_roi_max_f32 = roipool_roi_max_f32_base;
    roipool_roi_max_f64 = roipool_roi_max_f64_base;
    roipool_transpose32 = roipool_transpose32_base;
    roipool_stream32 = roipool_stream32_base;
    return roipool_isa_level = 0;
}

static int roipool_get_isa(void) { return roipool_isa_level; }

#endif /* ROIPOOL_SIMD_DISPATCH_H */
