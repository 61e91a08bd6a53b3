/* The RoIAlign kernels of roi_align.inc.h, compiled per instruction set (as
 * kernels.h compiles the ROI max kernel) and element type, and their
 * entries in each ISA's kernel table (dispatch.h). */
#ifndef ROIPOOL_SIMD_ROI_ALIGN_H
#define ROIPOOL_SIMD_ROI_ALIGN_H

#include "common.h"
#include "fp16.h"
#include "ops_align.h"

/* ---- baseline ---- */
#define ROIPOOL_ISA base
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_VECTORS ROIPOOL_VECTOR_EXT
#include "roi_align_types.inc.h"
#undef ROIPOOL_VECTORS
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

#if ROIPOOL_X86_DISPATCH
#define ROIPOOL_VECTORS 1
#define ROIPOOL_ISA avx2
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX2
#define ROIPOOL_NARROWER base
#include "roi_align_types.inc.h"
#undef ROIPOOL_NARROWER
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

#define ROIPOOL_ISA avx512
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX512
#define ROIPOOL_NARROWER avx2
#include "roi_align_types.inc.h"
#undef ROIPOOL_NARROWER
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA
#undef ROIPOOL_VECTORS
#endif

#if ROIPOOL_NEON
#define ROIPOOL_VECTORS 1
#define ROIPOOL_ISA neon
#define ROIPOOL_ISA_ATTR
#include "roi_align_types.inc.h"
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA
#undef ROIPOOL_VECTORS
#endif

/* Table fields (dispatch.h): forward and backward per element type. */
#define ROIPOOL_ALIGN_FIELDS(type)                                                      \
    void (*align_fwd_##type)(const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const void *, \
                             ptrdiff_t, ptrdiff_t, roipool_##type##_ct,                   \
                             roipool_##type##_ct, int, roipool_##type##_t *);             \
    void (*align_bwd_##type)(roipool_##type##_ct *, ptrdiff_t, ptrdiff_t,                 \
                             const roipool_##type##_ct *, const void *, ptrdiff_t,        \
                             ptrdiff_t, roipool_##type##_ct, roipool_##type##_ct);
#define ROIPOOL_ALIGN_ENTRIES(isa)                                                      \
    roipool_align_fwd_f32_##isa, roipool_align_bwd_f32_##isa,                           \
        roipool_align_fwd_f64_##isa, roipool_align_bwd_f64_##isa,                       \
        roipool_align_fwd_f16_##isa, roipool_align_bwd_f16_##isa,                       \
        roipool_align_fwd_bf16_##isa, roipool_align_bwd_bf16_##isa

#endif /* ROIPOOL_SIMD_ROI_ALIGN_H */
