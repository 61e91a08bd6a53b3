/* backward.inc.h compiled per ISA and half type: roipool_{widen,scatter,
 * narrow}_{f16,bf16}_<isa>. AVX-512 uses the AVX2 ones (the scatter is
 * scalar; widen and narrow are bound by memory), as it does the transposes. */
#ifndef ROIPOOL_SIMD_BACKWARD_H
#define ROIPOOL_SIMD_BACKWARD_H

#include "common.h"
#include "template.h"
#include "fp16.h"
#include "ops_base.h"
#include "ops_avx2.h"
#include "ops_neon.h"

/* ---- baseline ---- */
#define RP_ISA base
#define RP_ATTR
#define RP_VECTORS ROIPOOL_VECTOR_EXT
#include "backward_types.inc.h"

#if ROIPOOL_X86_DISPATCH
/* ---- AVX2 (and AVX-512) ---- */
#define RP_ISA avx2
#define RP_ATTR ROIPOOL_TARGET_AVX2
#define RP_VECTORS 1
#include "backward_types.inc.h"
#endif

#if ROIPOOL_NEON
/* ---- NEON ---- */
#define RP_ISA neon
#define RP_ATTR
#define RP_VECTORS 1
#include "backward_types.inc.h"
#endif

/* The backward entries of an ISA's kernel table (dispatch.h). */
#define ROIPOOL_BACKWARD_ENTRIES(isa)                                                   \
    roipool_widen_f16_##isa, roipool_widen_bf16_##isa, roipool_scatter_f16_##isa,       \
        roipool_scatter_bf16_##isa, roipool_narrow_f16_##isa, roipool_narrow_bf16_##isa

#endif /* ROIPOOL_SIMD_BACKWARD_H */
