/* Run-time choice of the SIMD path: one const table of kernels per ISA and
 * a pointer to the active one, set at import (roipool._config) and by
 * roipool.set_isa(). */
#ifndef ROIPOOL_SIMD_DISPATCH_H
#define ROIPOOL_SIMD_DISPATCH_H

#include "common.h"
#include "kernels.h"
#include "store.h"
#include "backward.h"
#include "roi_align.h"

/* One kernel per element type (signature in roi_max.inc.h; res is in the
 * storage type), the scratch -> out transposes and the streaming copy. */
#define ROIPOOL_ROI_MAX_FN(type)                                                        \
    void (*roi_max_##type)(const roipool_block_t *, const ptrdiff_t *, ptrdiff_t,      \
                           ptrdiff_t, ptrdiff_t, ptrdiff_t, roipool_##type##_ct,         \
                           roipool_##type##_t *, int32_t *, roipool_##type##_idx_t *)
typedef struct {
    const char *name;
    ROIPOOL_ROI_MAX_FN(f32);
    ROIPOOL_ROI_MAX_FN(f64);
    ROIPOOL_ROI_MAX_FN(f16);
    ROIPOOL_ROI_MAX_FN(bf16);
    void (*transpose16)(const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *);
    void (*transpose32)(const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *);
    void (*stream32)(const void *, ptrdiff_t, void *);
    /* backward, float16/bfloat16 (backward.inc.h) */
    int (*widen_f16)(const roipool_f16_t *, ptrdiff_t, float *);
    int (*widen_bf16)(const roipool_bf16_t *, ptrdiff_t, float *);
    int (*scatter_f16)(float *, const float *, const int32_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                       int);
    int (*scatter_bf16)(float *, const float *, const int32_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                        int);
    void (*narrow_f16)(const float *, ptrdiff_t, roipool_f16_t *);
    void (*narrow_bf16)(const float *, ptrdiff_t, roipool_bf16_t *);
    /* RoIAlign (roi_align.inc.h) */
    ROIPOOL_ALIGN_FIELDS(f32)
    ROIPOOL_ALIGN_FIELDS(f64)
    ROIPOOL_ALIGN_FIELDS(f16)
    ROIPOOL_ALIGN_FIELDS(bf16)
} roipool_kernels_t;
#undef ROIPOOL_ROI_MAX_FN

/* ISA ids, in the order of roipool._config.ISA_NAMES. */
enum {
    ROIPOOL_ISA_BASELINE = 0,
    ROIPOOL_ISA_AVX2 = 1,
    ROIPOOL_ISA_AVX512 = 2,
    ROIPOOL_ISA_NEON = 3,
    ROIPOOL_ISA_COUNT = 4
};

#define ROIPOOL_KERNEL_TABLE(isa, label, t16, t32, s32, bw)                             \
    static const roipool_kernels_t roipool_kernels_##isa = {                           \
        label, roipool_roi_max_f32_##isa, roipool_roi_max_f64_##isa,                   \
        roipool_roi_max_f16_##isa, roipool_roi_max_bf16_##isa, t16, t32, s32,          \
        ROIPOOL_BACKWARD_ENTRIES(bw), ROIPOOL_ALIGN_ENTRIES(isa)}

ROIPOOL_KERNEL_TABLE(base, "baseline", roipool_transpose16_base, roipool_transpose32_base,
                     roipool_stream32_base, base);
#if ROIPOOL_X86_DISPATCH
ROIPOOL_KERNEL_TABLE(avx2, "avx2", roipool_transpose16_avx2, roipool_transpose32_avx2,
                     roipool_stream32_avx2, avx2);
ROIPOOL_KERNEL_TABLE(avx512, "avx512", roipool_transpose16_avx2, roipool_transpose32_avx512,
                     roipool_stream32_avx512, avx2);
#endif
#if ROIPOOL_NEON
/* no streaming stores: GCC has no non-temporal store intrinsic for arm64 */
ROIPOOL_KERNEL_TABLE(neon, "neon", roipool_transpose16_neon, roipool_transpose32_neon,
                     roipool_stream32_base, neon);
#endif

/* The compiled table of an ISA id, NULL when this build has none (neon:
 * aarch64 only, where every CPU has it). */
static const roipool_kernels_t *roipool_kernels_of(int isa)
{
    switch (isa) {
    case ROIPOOL_ISA_BASELINE: return &roipool_kernels_base;
#if ROIPOOL_X86_DISPATCH
    case ROIPOOL_ISA_AVX2: return &roipool_kernels_avx2;
    case ROIPOOL_ISA_AVX512: return &roipool_kernels_avx512;
#endif
#if ROIPOOL_NEON
    case ROIPOOL_ISA_NEON: return &roipool_kernels_neon;
#endif
    default: return NULL;
    }
}

/* The table every call goes through. */
static const roipool_kernels_t *roipool_kernels = &roipool_kernels_base;
static int roipool_isa_id = ROIPOOL_ISA_BASELINE;

#if ROIPOOL_X86_DISPATCH
#include <cpuid.h>
/* CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports lacks "f16c"). */
static int roipool_cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1u);
}
#endif

/* Compiled here and runnable on this CPU. */
static int roipool_isa_supported(int isa)
{
    if (roipool_kernels_of(isa) == NULL) return 0;
#if ROIPOOL_X86_DISPATCH
    __builtin_cpu_init();
    if (isa == ROIPOOL_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && roipool_cpu_has_f16c();
    if (isa == ROIPOOL_ISA_AVX512)
        return roipool_isa_supported(ROIPOOL_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
#endif
    return 1;
}

/* The next path down in an ISA's own family: avx512 -> avx2 -> baseline,
 * neon -> baseline. */
static int roipool_isa_fallback(int isa)
{
    return isa == ROIPOOL_ISA_AVX512 ? ROIPOOL_ISA_AVX2 : ROIPOOL_ISA_BASELINE;
}

/* Select the path, or the best supported one below it in its family;
 * returns the id in use. Not thread-safe by design: the Python layer calls
 * it at import and from set_isa() only. */
static int roipool_set_isa(int isa)
{
    if (isa < 0 || isa >= ROIPOOL_ISA_COUNT) isa = ROIPOOL_ISA_BASELINE;
    while (!roipool_isa_supported(isa)) isa = roipool_isa_fallback(isa);
    roipool_kernels = roipool_kernels_of(isa);
    return roipool_isa_id = isa;
}

static int roipool_get_isa(void) { return roipool_isa_id; }

#endif /* ROIPOOL_SIMD_DISPATCH_H */
