/* The ROI max kernel of roi_max.inc.h and the RoIAlign kernels of
 * roi_align.inc.h, compiled once per instruction set and element type
 * (roi_max_types.inc.h: f32, f64, f16, bf16):
 *   base    every CPU of the target (GCC/clang vector extensions)
 *   avx2    x86 with GCC/clang, target "avx2,f16c"
 *   avx512  x86 with GCC/clang, avx512f/bw/vl/dq
 *   neon    aarch64 with GCC/clang (part of the baseline there: no target
 *           attribute, no run-time check; selectable against base)
 * dispatch.h gathers each ISA's kernels into one table and picks a table
 * at run time. A block narrower than one vector goes to the next narrower
 * path (ROIPOOL_NARROWER). */
#ifndef ROIPOOL_SIMD_KERNELS_H
#define ROIPOOL_SIMD_KERNELS_H

#include "common.h"
#include "fp16.h"
#include "ops_base.h"
#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_neon.h"
#include "ops_align.h"

/* ---- baseline ---- */
#define ROIPOOL_ISA base
#define ROIPOOL_ISA_ATTR
#define ROIPOOL_VECTORS ROIPOOL_VECTOR_EXT
#include "roi_max_types.inc.h"
#undef ROIPOOL_VECTORS
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

#if ROIPOOL_X86_DISPATCH
#define ROIPOOL_VECTORS 1

/* ---- AVX2 ---- */
#define ROIPOOL_ISA avx2
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX2
#define ROIPOOL_NARROWER base
#include "roi_max_types.inc.h"
#undef ROIPOOL_NARROWER
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

/* ---- AVX-512 ---- */
#define ROIPOOL_ISA avx512
#define ROIPOOL_ISA_ATTR ROIPOOL_TARGET_AVX512
#define ROIPOOL_NARROWER avx2
#include "roi_max_types.inc.h"
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
#include "roi_max_types.inc.h"
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA
#undef ROIPOOL_VECTORS
#endif /* ROIPOOL_NEON */

#endif /* ROIPOOL_SIMD_KERNELS_H */
