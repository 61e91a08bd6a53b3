/* Operation table of the NEON path (aarch64, where Advanced SIMD is part of
 * the baseline: no target attribute, no run-time check). Names:
 * roipool_neon_<type>_<op>; the ops are listed in ops.h.
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

/* Scratch -> out transposes (see store.h): 4 x 4 tiles of 4-byte elements
 * and 8 x 8 tiles of 2-byte ones through TRN1/TRN2 at doubling widths; the
 * baseline's element-by-element copy costs a load and a store per element.
 * A tile function transposes one tile from s (row stride ss) to d (ld). */
static ROIPOOL_ALWAYS_INLINE void roipool_neon_tile32(const uint32_t *s, ptrdiff_t ss,
                                                      uint32_t *d, ptrdiff_t ld)
{
    const uint32x4_t r0 = vld1q_u32(s), r1 = vld1q_u32(s + ss);
    const uint32x4_t r2 = vld1q_u32(s + 2 * ss), r3 = vld1q_u32(s + 3 * ss);
    /* t0 = channels 0, 2 of rows 0, 1; t1 = channels 1, 3; t2, t3 rows 2, 3 */
    const uint64x2_t t0 = vreinterpretq_u64_u32(vtrn1q_u32(r0, r1));
    const uint64x2_t t1 = vreinterpretq_u64_u32(vtrn2q_u32(r0, r1));
    const uint64x2_t t2 = vreinterpretq_u64_u32(vtrn1q_u32(r2, r3));
    const uint64x2_t t3 = vreinterpretq_u64_u32(vtrn2q_u32(r2, r3));
    vst1q_u32(d, vreinterpretq_u32_u64(vtrn1q_u64(t0, t2)));
    vst1q_u32(d + ld, vreinterpretq_u32_u64(vtrn1q_u64(t1, t3)));
    vst1q_u32(d + 2 * ld, vreinterpretq_u32_u64(vtrn2q_u64(t0, t2)));
    vst1q_u32(d + 3 * ld, vreinterpretq_u32_u64(vtrn2q_u64(t1, t3)));
}

static ROIPOOL_ALWAYS_INLINE void roipool_neon_tile16(const uint16_t *s, ptrdiff_t ss,
                                                      uint16_t *d, ptrdiff_t ld)
{
    uint16x8_t r[8];
    uint32x4_t t[8];
    uint64x2_t u[8];
    int q;
    for (q = 0; q < 8; ++q) r[q] = vld1q_u16(s + q * ss);
    /* t[2q]: even channels of rows 2q, 2q+1 paired; t[2q+1]: odd ones */
    for (q = 0; q < 4; ++q) {
        t[2 * q] = vreinterpretq_u32_u16(vtrn1q_u16(r[2 * q], r[2 * q + 1]));
        t[2 * q + 1] = vreinterpretq_u32_u16(vtrn2q_u16(r[2 * q], r[2 * q + 1]));
    }
    /* u[4h + c]: channels c, c + 4 (c < 4) of rows 4h .. 4h + 3 */
    for (q = 0; q < 2; ++q) {
        u[4 * q] = vreinterpretq_u64_u32(vtrn1q_u32(t[4 * q], t[4 * q + 2]));
        u[4 * q + 1] = vreinterpretq_u64_u32(vtrn1q_u32(t[4 * q + 1], t[4 * q + 3]));
        u[4 * q + 2] = vreinterpretq_u64_u32(vtrn2q_u32(t[4 * q], t[4 * q + 2]));
        u[4 * q + 3] = vreinterpretq_u64_u32(vtrn2q_u32(t[4 * q + 1], t[4 * q + 3]));
    }
    for (q = 0; q < 4; ++q) {
        vst1q_u16(d + q * ld, vreinterpretq_u16_u64(vtrn1q_u64(u[q], u[q + 4])));
        vst1q_u16(d + (q + 4) * ld, vreinterpretq_u16_u64(vtrn2q_u64(u[q], u[q + 4])));
    }
}

/* Full tiles by TILE, the bins and channels past them element by element. */
#define ROIPOOL_NEON_TRANSPOSE(bits, TILE)                                              \
    static void roipool_transpose##bits##_neon(const void *ROIPOOL_RESTRICT src_,         \
                                               ptrdiff_t ss, ptrdiff_t nc, ptrdiff_t nbins, \
                                               ptrdiff_t ld, void *ROIPOOL_RESTRICT dst_) \
    {                                                                                   \
        const uint##bits##_t *src = (const uint##bits##_t *)src_;                       \
        uint##bits##_t *dst = (uint##bits##_t *)dst_;                                   \
        ptrdiff_t j, k, jt, kt;                                                         \
        for (j = 0; j + TILE <= nc; j += TILE) {                                        \
            for (k = 0; k + TILE <= nbins; k += TILE)                                   \
                roipool_neon_tile##bits(src + k * ss + j, ss, dst + j * ld + k, ld);    \
            for (jt = j; jt < j + TILE; ++jt)                                           \
                for (kt = k; kt < nbins; ++kt) dst[jt * ld + kt] = src[kt * ss + jt];   \
        }                                                                               \
        for (; j < nc; ++j)                                                             \
            for (k = 0; k < nbins; ++k) dst[j * ld + k] = src[k * ss + j];              \
    }
ROIPOOL_NEON_TRANSPOSE(32, 4)
ROIPOOL_NEON_TRANSPOSE(16, 8)
#undef ROIPOOL_NEON_TRANSPOSE

/* ---- backward (backward.inc.h; round1, store_ct as in ops.h) ----
 * FCVT's round trip rounds like roipool_round_half and keeps the quiet NaNs
 * of the sums (FPCR.DN clear, as on Linux); FCVTN stores a quiet NaN as
 * from_ct does. */
static inline float roipool_neon_f16_round1(float x)
{
    return vgetq_lane_f32(vcvt_f32_f16(vcvt_f16_f32(vdupq_n_f32(x))), 0);
}
/* roipool_round_bf16_sum in a vector register, as on AVX2 */
static inline float roipool_neon_bf16_round1(float x)
{
    const uint32x2_t u = vreinterpret_u32_f32(vdup_n_f32(x));
    const uint32x2_t odd = vand_u32(vshr_n_u32(u, 16), vdup_n_u32(1));
    const uint32x2_t r = vadd_u32(vadd_u32(u, vdup_n_u32(0x7fff)), odd);
    return vget_lane_f32(vreinterpret_f32_u32(vand_u32(r, vdup_n_u32(0xffff0000u))), 0);
}
#define roipool_neon_f16_store_ct roipool_neon_f16_store

static inline void roipool_neon_bf16_store_ct(roipool_bf16_t *p, float32x4_t v)
{
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t q = vorrq_u32(vandq_u32(u, vdupq_n_u32(0x80000000u)), vdupq_n_u32(0x7fc00000u));
    roipool_neon_bf16_store(p, vreinterpretq_f32_u32(vbslq_u32(vceqq_f32(v, v), u, q)));
}

#else
#define ROIPOOL_NEON 0
#endif
#endif /* ROIPOOL_SIMD_OPS_NEON_H */
