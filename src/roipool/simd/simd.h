/* What the compiled module (_roi_pool.pyx, through _simd.pxd) uses of the
 * C side:
 *   common.h         includes, target attributes, element types (storage,
 *                    compute, argmax lanes), roipool_block_t, prefetch
 *   ops_<isa>.h      per-ISA operation tables (base, avx2, avx512; neon on
 *                    aarch64), float16/bfloat16 load/store in registers
 *   ops.h            the ops every table provides, checked at compile time
 *   template.h       the RP_ names the kernel bodies are written in
 *   roi_max.inc.h    the ROI max kernel, written once
 *   backward.inc.h   the backward's float16/bfloat16 helpers, written once
 *   kernels.h        the ISAs, each compiling every body for every element
 *                    type (isa_kernels.inc.h)
 *   store.h          scratch -> out transposes (16/32/64-bit), streaming copies
 *   dispatch.h       the ISA list, one const roipool_kernels_t table per ISA,
 *                    the active one
 *   fp16.h           float16/bfloat16 scalar conversions and rounding
 *   cache.h          the L2 cache size */
#ifndef ROIPOOL_SIMD_H
#define ROIPOOL_SIMD_H

#include "common.h"
#include "dispatch.h"
#include "fp16.h"
#include "cache.h"

#endif /* ROIPOOL_SIMD_H */
