/* The ROI max kernel of roi_max.inc.h, compiled once per instruction set
 * and element type: baseline (every CPU of the target), AVX2 and AVX-512
 * (x86 with GCC/clang, selected at run time by dispatch.h), NEON (aarch64
 * with GCC/clang, selectable against baseline). A block
 * narrower than one vector goes to the next narrower path. */
#ifndef ROIPOOL_SIMD_KERNELS_H
#define ROIPOOL_SIMD_KERNELS_H

#include "common.h"
#include "ops_base.h"
#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_neon.h"

/* ---- baseline ---- */
#define ROIPOOL_ISA base
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_VECTORS ROIPOOL_VECTOR_EXT
#define ROIPOOL_TYPE f32
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#undef ROIPOOL_VECTORS
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

#if ROIPOOL_X86_DISPATCH
#define ROIPOOL_VECTORS 1

/* ---- AVX2 ---- */
#define ROIPOOL_ISA avx2
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX2
#define ROIPOOL_NARROWER base
#define ROIPOOL_TYPE f32
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#undef ROIPOOL_NARROWER
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

/* ---- AVX-512 ---- */
#define ROIPOOL_ISA avx512
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX512
#define ROIPOOL_NARROWER avx2
#define ROIPOOL_TYPE f32
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#undef ROIPOOL_NARROWER
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

#undef ROIPOOL_VECTORS
#endif /* ROIPOOL_X86_DISPATCH */

#if ROIPOOL_NEON
/* ---- NEON (aarch64 baseline: no target attribute) ---- */
#define ROIPOOL_VECTORS 1
#define ROIPOOL_ISA neon
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_TYPE f32
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_max.inc.h"
#undef ROIPOOL_TYPE
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA
#undef ROIPOOL_VECTORS
#endif /* ROIPOOL_NEON */

#endif /* ROIPOOL_SIMD_KERNELS_H */
