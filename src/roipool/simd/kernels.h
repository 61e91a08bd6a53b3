/* The kernels of every instruction set: the bodies (roi_max.inc.h,
 * backward.inc.h, roi_align.inc.h) compiled once per ISA and element type by
 * isa_kernels.inc.h, for
 *   base    every CPU of the target (GCC/clang vector extensions)
 *   avx2    x86 with GCC/clang, target "avx2,f16c"
 *   avx512  x86 with GCC/clang, avx512f/bw/vl/dq
 *   neon    aarch64 with GCC/clang (part of the baseline there: no target
 *           attribute, no run-time check; selectable against base)
 * Each ISA's ops are checked complete first (ops.h). A block narrower than
 * one vector goes to the next narrower path (RP_NARROWER). dispatch.h
 * gathers each ISA's kernels into its table. tools/expand_kernels.sh prints
 * what one ISA and type compile to. */
#ifndef ROIPOOL_SIMD_KERNELS_H
#define ROIPOOL_SIMD_KERNELS_H

#include "common.h"
#include "fp16.h"
#include "ops.h"
#include "ops_align.h"
#include "template.h"

/* ---- baseline ---- */
#define RP_ISA base
#define RP_ATTR
#define RP_VECTORS ROIPOOL_VECTOR_EXT
#define RP_BACKWARD 1
#include "isa_kernels.inc.h"
#undef RP_BACKWARD
#undef RP_VECTORS
#undef RP_ATTR
#undef RP_ISA

#if ROIPOOL_X86_DISPATCH
/* ---- AVX2 ---- */
#define RP_ISA avx2
#define RP_ATTR ROIPOOL_TARGET_AVX2
#define RP_VECTORS 1
#define RP_NARROWER base
#define RP_BACKWARD 1
#include "isa_kernels.inc.h"
#undef RP_BACKWARD
#undef RP_NARROWER
#undef RP_VECTORS
#undef RP_ATTR
#undef RP_ISA

/* ---- AVX-512 ---- */
#define RP_ISA avx512
#define RP_ATTR ROIPOOL_TARGET_AVX512
#define RP_VECTORS 1
#define RP_NARROWER avx2
#define RP_BACKWARD 0 /* AVX2's (dispatch.h) */
#include "isa_kernels.inc.h"
#undef RP_BACKWARD
#undef RP_NARROWER
#undef RP_VECTORS
#undef RP_ATTR
#undef RP_ISA
#endif /* ROIPOOL_X86_DISPATCH */

#if ROIPOOL_NEON
/* ---- NEON (aarch64 baseline: no target attribute) ---- */
#define RP_ISA neon
#define RP_ATTR
#define RP_VECTORS 1
#define RP_BACKWARD 1
#include "isa_kernels.inc.h"
#undef RP_BACKWARD
#undef RP_VECTORS
#undef RP_ATTR
#undef RP_ISA
#endif /* ROIPOOL_NEON */

#endif /* ROIPOOL_SIMD_KERNELS_H */
