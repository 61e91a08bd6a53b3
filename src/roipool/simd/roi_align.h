/* The RoIAlign kernels' entries in each ISA's kernel table (dispatch.h);
 * kernels.h compiles them (roi_align.inc.h) with the ROI max kernel. */
#ifndef ROIPOOL_SIMD_ROI_ALIGN_H
#define ROIPOOL_SIMD_ROI_ALIGN_H

#include "kernels.h"

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
