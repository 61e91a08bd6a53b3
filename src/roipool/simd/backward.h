/* backward.inc.h compiled per ISA and half type: roipool_{widen,scatter,
 * narrow}_{f16,bf16}_<isa>. AVX-512 uses the AVX2 ones (the scatter is
 * scalar; widen and narrow are bound by memory), as it does the transposes. */
#ifndef ROIPOOL_SIMD_BACKWARD_H
#define ROIPOOL_SIMD_BACKWARD_H

#include "common.h"
#include "fp16.h"
#include "ops_base.h"
#include "ops_avx2.h"
#include "ops_neon.h"

/* ---- baseline ---- */
#define ROIPOOL_ISA base
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_VECTORS ROIPOOL_VECTOR_EXT
#include "backward_types.inc.h"

#if ROIPOOL_X86_DISPATCH
/* ---- AVX2 (and AVX-512) ---- */
#define ROIPOOL_ISA avx2
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX2
#define ROIPOOL_VECTORS 1
#include "backward_types.inc.h"
#endif

#if ROIPOOL_NEON
/* ---- NEON ---- */
#define ROIPOOL_ISA neon
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_VECTORS 1
#include "backward_types.inc.h"
#endif

/* The backward entries of an ISA's kernel table (dispatch.h). */
#define ROIPOOL_BACKWARD_ENTRIES(isa)                                                   \
    roipool_widen_f16_##isa, roipool_widen_bf16_##isa, roipool_scatter_f16_##isa,       \
        roipool_scatter_bf16_##isa, roipool_narrow_f16_##isa, roipool_narrow_bf16_##isa

#endif /* ROIPOOL_SIMD_BACKWARD_H */
