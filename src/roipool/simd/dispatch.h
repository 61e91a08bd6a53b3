/* Run-time choice of the SIMD path: one const table of kernels per ISA and
 * a pointer to the active one, set at import (roipool._config) and by
 * roipool.set_isa(). */
#ifndef ROIPOOL_SIMD_DISPATCH_H
#define ROIPOOL_SIMD_DISPATCH_H

#include "common.h"
#include "kernels.h"
#include "store.h"

/* The SIMD paths, X(isa, name): the ids (ROIPOOL_ISA_<isa>, the order of
 * this list) and names that roipool._config shows and set_isa() takes.
 * Families: avx512 -> avx2 -> base, neon -> base (roipool_isa_fallback). */
#define ROIPOOL_ISAS(X) X(base, "baseline") X(avx2, "avx2") X(avx512, "avx512") X(neon, "neon")

#define ROIPOOL_ISA_ID_(isa, name) ROIPOOL_ISA_##isa,
enum { ROIPOOL_ISAS(ROIPOOL_ISA_ID_) ROIPOOL_ISA_COUNT };
#define ROIPOOL_ISA_NAME_(isa, name) name,
static const char roipool_isa_names[ROIPOOL_ISA_COUNT][16] = {ROIPOOL_ISAS(ROIPOOL_ISA_NAME_)};

/* The entries of an ISA's table, X(isa, entry, result, parameters): entry
 * `e` of ISA `isa` is the function roipool_<e>_<isa>, a missing one a
 * compile error. roi_max: one kernel per element type (roi_max.inc.h; res
 * in the storage type); the scratch -> out transposes and the streaming copy
 * (store.h); the backward's float16/bfloat16 helpers (backward.inc.h);
 * RoIAlign's forward and backward per element type (roi_align.inc.h).
 * Adding an entry: a line here, its definition for every ISA (or an alias
 * below), its declaration in _simd.pxd. */
#define ROIPOOL_ROI_MAX_PARAMS(type)                                                     \
    (const roipool_block_t *, const ptrdiff_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, \
     roipool_##type##_ct, roipool_##type##_t *, int32_t *, roipool_##type##_idx_t *)
#define ROIPOOL_TRANSPOSE_PARAMS (const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *)
#define ROIPOOL_SCATTER_PARAMS \
    (float *, const float *, const int32_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int)
/* RoIAlign (roi_align.inc.h), per element type: forward and backward */
#define ROIPOOL_ALIGN_ENTRIES(X, isa, type)                                              \
    X(isa, align_fwd_##type, void,                                                        \
      (const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const void *, ptrdiff_t, ptrdiff_t,   \
       roipool_##type##_ct, roipool_##type##_ct, int, roipool_##type##_t *))               \
    X(isa, align_bwd_##type, void,                                                        \
      (roipool_##type##_ct *, ptrdiff_t, ptrdiff_t, const roipool_##type##_ct *,           \
       const void *, ptrdiff_t, ptrdiff_t, roipool_##type##_ct, roipool_##type##_ct))
#define ROIPOOL_KERNEL_ENTRIES(X, isa)                                                   \
    X(isa, roi_max_f32, void, ROIPOOL_ROI_MAX_PARAMS(f32))                                \
    X(isa, roi_max_f64, void, ROIPOOL_ROI_MAX_PARAMS(f64))                                \
    X(isa, roi_max_f16, void, ROIPOOL_ROI_MAX_PARAMS(f16))                                \
    X(isa, roi_max_bf16, void, ROIPOOL_ROI_MAX_PARAMS(bf16))                              \
    X(isa, transpose16, void, ROIPOOL_TRANSPOSE_PARAMS)                                   \
    X(isa, transpose32, void, ROIPOOL_TRANSPOSE_PARAMS)                                   \
    X(isa, stream32, void, (const void *, ptrdiff_t, void *))                             \
    X(isa, widen_f16, int, (const roipool_f16_t *, ptrdiff_t, float *))                   \
    X(isa, widen_bf16, int, (const roipool_bf16_t *, ptrdiff_t, float *))                 \
    X(isa, scatter_f16, int, ROIPOOL_SCATTER_PARAMS)                                      \
    X(isa, scatter_bf16, int, ROIPOOL_SCATTER_PARAMS)                                     \
    X(isa, narrow_f16, void, (const float *, ptrdiff_t, roipool_f16_t *))                 \
    X(isa, narrow_bf16, void, (const float *, ptrdiff_t, roipool_bf16_t *))               \
    ROIPOOL_ALIGN_ENTRIES(X, isa, f32)                                                    \
    ROIPOOL_ALIGN_ENTRIES(X, isa, f64)                                                    \
    ROIPOOL_ALIGN_ENTRIES(X, isa, f16)                                                    \
    ROIPOOL_ALIGN_ENTRIES(X, isa, bf16)

#define ROIPOOL_KERNEL_FIELD_(isa, entry, result, params) result(*entry) params;
typedef struct {
    const char *name; /* roipool_isa_names[its id] */
    ROIPOOL_KERNEL_ENTRIES(ROIPOOL_KERNEL_FIELD_, )
} roipool_kernels_t;

/* Entries an ISA takes from another: AVX-512 uses AVX2's 16-bit transpose
 * and backward helpers (the scatter is scalar; widen and narrow are bound by
 * memory); NEON the baseline's copy (GCC has no non-temporal store
 * intrinsic for arm64). */
#define roipool_transpose16_avx512 roipool_transpose16_avx2
#define roipool_widen_f16_avx512 roipool_widen_f16_avx2
#define roipool_widen_bf16_avx512 roipool_widen_bf16_avx2
#define roipool_scatter_f16_avx512 roipool_scatter_f16_avx2
#define roipool_scatter_bf16_avx512 roipool_scatter_bf16_avx2
#define roipool_narrow_f16_avx512 roipool_narrow_f16_avx2
#define roipool_narrow_bf16_avx512 roipool_narrow_bf16_avx2
#define roipool_stream32_neon roipool_stream32_base

#define ROIPOOL_KERNEL_ENTRY_(isa, entry, result, params) roipool_##entry##_##isa,
#define ROIPOOL_KERNEL_TABLE(isa)                                                        \
    static const roipool_kernels_t roipool_kernels_##isa = {                             \
        roipool_isa_names[ROIPOOL_ISA_##isa], ROIPOOL_KERNEL_ENTRIES(ROIPOOL_KERNEL_ENTRY_, isa)}

ROIPOOL_KERNEL_TABLE(base);
#if ROIPOOL_X86_DISPATCH
ROIPOOL_KERNEL_TABLE(avx2);
ROIPOOL_KERNEL_TABLE(avx512);
#endif
#if ROIPOOL_NEON
ROIPOOL_KERNEL_TABLE(neon);
#endif

/* The compiled table of an ISA id, NULL when this build has none (neon:
 * aarch64 only, where every CPU has it). */
static const roipool_kernels_t *roipool_kernels_of(int isa)
{
    switch (isa) {
    case ROIPOOL_ISA_base: return &roipool_kernels_base;
#if ROIPOOL_X86_DISPATCH
    case ROIPOOL_ISA_avx2: return &roipool_kernels_avx2;
    case ROIPOOL_ISA_avx512: return &roipool_kernels_avx512;
#endif
#if ROIPOOL_NEON
    case ROIPOOL_ISA_neon: return &roipool_kernels_neon;
#endif
    default: return NULL;
    }
}

/* The table every call goes through. */
static const roipool_kernels_t *roipool_kernels = &roipool_kernels_base;

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
    if (isa == ROIPOOL_ISA_avx2)
        return __builtin_cpu_supports("avx2") && roipool_cpu_has_f16c();
    if (isa == ROIPOOL_ISA_avx512)
        return roipool_isa_supported(ROIPOOL_ISA_avx2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
#endif
    return 1;
}

/* The next path down in an ISA's own family: avx512 -> avx2 -> baseline,
 * neon -> baseline. */
static int roipool_isa_fallback(int isa)
{
    return isa == ROIPOOL_ISA_avx512 ? ROIPOOL_ISA_avx2 : ROIPOOL_ISA_base;
}

/* Select the path, or the best supported one below it in its family;
 * returns the id in use. Not thread-safe by design: the Python layer calls
 * it at import and from set_isa() only. */
static int roipool_set_isa(int isa)
{
    if (isa < 0 || isa >= ROIPOOL_ISA_COUNT) isa = ROIPOOL_ISA_base;
    while (!roipool_isa_supported(isa)) isa = roipool_isa_fallback(isa);
    roipool_kernels = roipool_kernels_of(isa);
    return isa;
}

#endif /* ROIPOOL_SIMD_DISPATCH_H */
