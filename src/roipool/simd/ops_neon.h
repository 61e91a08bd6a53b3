/* Operation table of the NEON path (aarch64, where Advanced SIMD is part of
 * the baseline: no target attribute, no run-time check). Names:
 * roipool_neon_<type>_<op>; the ops are described in roi_max.inc.h.
 *
 * max(v, b) must be exactly "v > b ? v : b". FMAXNM (vmaxnmq) is not: it
 * returns +0.0 for a -0.0/+0.0 tie whatever the order (the first maximum
 * must win) and FMAX (vmaxq) lets a NaN win. So max is FCMGT + BSL on the
 * compare that the argmax select needs anyway (the compiler emits it once):
 * one compare and two selects per vector. float16/bfloat16: load and store
 * only, in registers (FCVTL/FCVTN for binary16; 16-bit shifts for
 * bfloat16), exact both ways; they compute in the float vectors. */
#ifndef ROIPOOL_SIMD_OPS_NEON_H
#define ROIPOOL_SIMD_OPS_NEON_H

#include "common.h"
#include "fp16.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define ROIPOOL_NEON 1
#include <arm_neon.h>

typedef float32x4_t roipool_neon_f32_vt;
typedef int32x4_t roipool_neon_f32_it;
typedef uint32x4_t roipool_neon_f32_mt;
typedef int32x4_t roipool_neon_f32_kt;
enum { roipool_neon_f32_lanes = 4 };
#define roipool_neon_f32_load vld1q_f32
#define roipool_neon_f32_set1 vdupq_n_f32
#define roipool_neon_f32_kset1(x) vdupq_n_s32((int32_t)(x))
#define roipool_neon_f32_kinc(k) vaddq_s32(k, vdupq_n_s32(1))
#define roipool_neon_f32_kcast(k) (k)
#define roipool_neon_f32_gt vcgtq_f32
#define roipool_neon_f32_max(v, b) vbslq_f32(vcgtq_f32(v, b), v, b)
#define roipool_neon_f32_sel(i, k, m) vbslq_s32(m, k, i)
#define roipool_neon_f32_store vst1q_f32
#define roipool_neon_f32_istore(p, i) vst1q_s32((int32_t *)(p), i)

typedef float64x2_t roipool_neon_f64_vt;
typedef int64x2_t roipool_neon_f64_it;
typedef uint64x2_t roipool_neon_f64_mt;
typedef int64x2_t roipool_neon_f64_kt;
enum { roipool_neon_f64_lanes = 2 };
#define roipool_neon_f64_load vld1q_f64
#define roipool_neon_f64_set1 vdupq_n_f64
#define roipool_neon_f64_kset1(x) vdupq_n_s64((int64_t)(x))
#define roipool_neon_f64_kinc(k) vaddq_s64(k, vdupq_n_s64(1))
#define roipool_neon_f64_kcast(k) (k)
#define roipool_neon_f64_gt vcgtq_f64
#define roipool_neon_f64_max(v, b) vbslq_f64(vcgtq_f64(v, b), v, b)
#define roipool_neon_f64_sel(i, k, m) vbslq_s64(m, k, i)
#define roipool_neon_f64_store vst1q_f64
#define roipool_neon_f64_istore(p, i) vst1q_s64((int64_t *)(p), i)

/* halves: 4 storage elements <-> one float32x4. The kernel stores only
 * values that came from the storage type (or -inf, 0), never a NaN, so
 * FCVTN's rounding and NaN quieting never apply. */
#define roipool_neon_f16_load(p) \
    vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(p))))
#define roipool_neon_f16_store(p, v) \
    vst1_u16((uint16_t *)(p), vreinterpret_u16_f16(vcvt_f16_f32(v)))
#define roipool_neon_bf16_load(p) \
    vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(p)), 16))
#define roipool_neon_bf16_store(p, v) \
    vst1_u16((uint16_t *)(p), vshrn_n_u32(vreinterpretq_u32_f32(v), 16))

#else
#define ROIPOOL_NEON 0
#endif
#endif /* ROIPOOL_SIMD_OPS_NEON_H */
