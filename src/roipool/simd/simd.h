/* What the compiled module (_roi_pool.pyx) uses of the C side:
 *   common.h      includes, target attributes, roipool_block_t, prefetch
 *   ops_*.h       per-ISA operation tables (baseline, AVX2, AVX-512)
 *   roi_max.inc.h the ROI max kernel, written once; kernels.h instantiates
 *                 it per ISA and element type
 *   store.h       scratch -> out transposes and streaming copies
 *   dispatch.h    run-time choice of the path
 *   fp16.h        float16/bfloat16 rounding
 *   cache.h       the L2 cache size */
#ifndef ROIPOOL_SIMD_H
#define ROIPOOL_SIMD_H

#include "common.h"
#include "dispatch.h"
#include "fp16.h"
#include "cache.h"

#endif /* ROIPOOL_SIMD_H */
