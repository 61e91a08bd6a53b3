/* The arithmetic RoIAlign adds to each ISA's operation table (names
 * roipool_<isa>_<type>_<op>, beside those of ops_<isa>.h; the kernel is
 * roi_align.inc.h):
 *   add, mul, div   one IEEE operation per lane, never fused (the build has
 *                   -ffp-contract=off: torchvision rounds every product)
 *   round           after every operation: float16 rounds to the storage
 *                   type and back (c10::Half arithmetic); identity for the
 *                   others (bfloat16 computes in float32, docs/semantics.md)
 *   round_out       before a result is stored: bfloat16 rounds its float32
 *                   result once, to nearest even; identity for the others
 * and, per element type, the scalar round_ct / round_out_ct of the channels
 * no vector covers. */
#ifndef ROIPOOL_SIMD_OPS_ALIGN_H
#define ROIPOOL_SIMD_OPS_ALIGN_H

#include "common.h"
#include "fp16.h"
#include "ops.h"

static inline float roipool_f32_round_ct(float x) { return x; }
static inline double roipool_f64_round_ct(double x) { return x; }
#define roipool_f16_round_ct roipool_round_half
static inline float roipool_bf16_round_ct(float x) { return x; }
#define roipool_f32_round_out_ct roipool_f32_round_ct
#define roipool_f64_round_out_ct roipool_f64_round_ct
#define roipool_f16_round_out_ct roipool_f32_round_ct
#define roipool_bf16_round_out_ct roipool_round_bf16

/* One sample of a bin (docs/semantics.md, RoIAlign): the four corners'
 * pixel indices h * W + w and their bilinear weights, in the compute type.
 * An out-of-map sample has weights 0 at pixel 0 (the forward reads it, so
 * an inf or NaN there shows as torchvision shows it) and pos[0] = -1 in a
 * backward table (torchvision adds nothing for it). */
typedef struct { int32_t pos[4]; float w[4]; } roipool_f32_sample_t;
typedef struct { int32_t pos[4]; double w[4]; } roipool_f64_sample_t;
typedef roipool_f32_sample_t roipool_f16_sample_t;
typedef roipool_f32_sample_t roipool_bf16_sample_t;

#if ROIPOOL_VECTOR_EXT
#define roipool_base_f32_add(a, b) ((a) + (b))
#define roipool_base_f32_mul(a, b) ((a) * (b))
#define roipool_base_f32_div(a, b) ((a) / (b))
#define roipool_base_f64_add(a, b) ((a) + (b))
#define roipool_base_f64_mul(a, b) ((a) * (b))
#define roipool_base_f64_div(a, b) ((a) / (b))
#define roipool_base_f32_round(v) (v)
#define roipool_base_f64_round(v) (v)
#define roipool_base_bf16_round(v) (v)
#define roipool_base_f32_round_out(v) (v)
#define roipool_base_f64_round_out(v) (v)
#define roipool_base_f16_round_out(v) (v)
static inline roipool_base_f32_vt roipool_base_f16_round(roipool_base_f32_vt v)
{
    int j;
    for (j = 0; j < roipool_base_f32_lanes; ++j) v[j] = roipool_round_half(v[j]);
    return v;
}
/* a NaN here is an operation's (quiet, low 16 bits zero, kept by the
 * rounding: fp16.h) or a bfloat16 input's */
static inline roipool_base_f32_vt roipool_base_bf16_round_out(roipool_base_f32_vt v)
{
    const roipool_base_u32x4 u = (roipool_base_u32x4)v;
    return (roipool_base_f32_vt)((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
}
#endif

#if ROIPOOL_X86_DISPATCH
#define roipool_avx2_f32_add _mm256_add_ps
#define roipool_avx2_f32_mul _mm256_mul_ps
#define roipool_avx2_f32_div _mm256_div_ps
#define roipool_avx2_f64_add _mm256_add_pd
#define roipool_avx2_f64_mul _mm256_mul_pd
#define roipool_avx2_f64_div _mm256_div_pd
#define roipool_avx2_f32_round(v) (v)
#define roipool_avx2_f64_round(v) (v)
#define roipool_avx2_bf16_round(v) (v)
#define roipool_avx2_f32_round_out(v) (v)
#define roipool_avx2_f64_round_out(v) (v)
#define roipool_avx2_f16_round_out(v) (v)
#define roipool_avx2_f16_round(v) \
    _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT))
/* round to nearest even on the bits, as roipool_round_bf16_sum (fp16.h);
 * ip: the intrinsics' prefix, bits: the vector width */
#define ROIPOOL_BF16_ROUND_OUT(isa, attr, ip, bits)                                         \
    attr static inline __m##bits roipool_##isa##_bf16_round_out(__m##bits v)                 \
    {                                                                                       \
        const __m##bits##i u = ip##_castps_si##bits(v);                                     \
        const __m##bits##i odd = ip##_and_si##bits(ip##_srli_epi32(u, 16), ip##_set1_epi32(1)); \
        const __m##bits##i r = ip##_add_epi32(ip##_add_epi32(u, ip##_set1_epi32(0x7fff)), odd); \
        return ip##_castsi##bits##_ps(ip##_and_si##bits(r, ip##_set1_epi32((int)0xffff0000u))); \
    }
ROIPOOL_BF16_ROUND_OUT(avx2, ROIPOOL_TARGET_AVX2, _mm256, 256)
ROIPOOL_BF16_ROUND_OUT(avx512, ROIPOOL_TARGET_AVX512, _mm512, 512)
#undef ROIPOOL_BF16_ROUND_OUT

#define roipool_avx512_f32_add _mm512_add_ps
#define roipool_avx512_f32_mul _mm512_mul_ps
#define roipool_avx512_f32_div _mm512_div_ps
#define roipool_avx512_f64_add _mm512_add_pd
#define roipool_avx512_f64_mul _mm512_mul_pd
#define roipool_avx512_f64_div _mm512_div_pd
#define roipool_avx512_f32_round(v) (v)
#define roipool_avx512_f64_round(v) (v)
#define roipool_avx512_bf16_round(v) (v)
#define roipool_avx512_f32_round_out(v) (v)
#define roipool_avx512_f64_round_out(v) (v)
#define roipool_avx512_f16_round_out(v) (v)
#define roipool_avx512_f16_round(v) \
    _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT))
#endif /* ROIPOOL_X86_DISPATCH */

#if ROIPOOL_NEON
#define roipool_neon_f32_add vaddq_f32
#define roipool_neon_f32_mul vmulq_f32
#define roipool_neon_f32_div vdivq_f32
#define roipool_neon_f64_add vaddq_f64
#define roipool_neon_f64_mul vmulq_f64
#define roipool_neon_f64_div vdivq_f64
#define roipool_neon_f32_round(v) (v)
#define roipool_neon_f64_round(v) (v)
#define roipool_neon_bf16_round(v) (v)
#define roipool_neon_f32_round_out(v) (v)
#define roipool_neon_f64_round_out(v) (v)
#define roipool_neon_f16_round_out(v) (v)
#define roipool_neon_f16_round(v) vcvt_f32_f16(vcvt_f16_f32(v))
static inline float32x4_t roipool_neon_bf16_round_out(float32x4_t v)
{
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), odd);
    return vreinterpretq_f32_u32(vandq_u32(r, vdupq_n_u32(0xffff0000u)));
}
#endif /* ROIPOOL_NEON */

/* The list of these ops, checked per ISA as ops.h checks its own
 * (isa_kernels.inc.h): X(table, op, result type, arguments). */
#define ROIPOOL_ALIGN_LANE_OPS(X, T)                                                       \
    X(T, add, T##_vt, (ROIPOOL_OPS_VAL_(T, vt), ROIPOOL_OPS_VAL_(T, vt)))                   \
    X(T, mul, T##_vt, (ROIPOOL_OPS_VAL_(T, vt), ROIPOOL_OPS_VAL_(T, vt)))                   \
    X(T, div, T##_vt, (ROIPOOL_OPS_VAL_(T, vt), ROIPOOL_OPS_VAL_(T, vt)))                   \
    X(T, round, T##_vt, (ROIPOOL_OPS_VAL_(T, vt)))                                          \
    X(T, round_out, T##_vt, (ROIPOOL_OPS_VAL_(T, vt)))
#define ROIPOOL_ALIGN_HALF_OPS(X, T, F)                                                    \
    X(T, round, F##_vt, (ROIPOOL_OPS_VAL_(F, vt)))                                          \
    X(T, round_out, F##_vt, (ROIPOOL_OPS_VAL_(F, vt)))
#define ROIPOOL_CHECK_ALIGN_OPS(isa) ROIPOOL_CHECK_ALIGN_OPS_(isa)
#define ROIPOOL_CHECK_ALIGN_OPS_(isa)                                                      \
    static inline ROIPOOL_OPS_UNUSED_ void roipool_check_align_ops_##isa(void)             \
    {                                                                                      \
        ROIPOOL_ALIGN_LANE_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f32)                    \
        ROIPOOL_ALIGN_LANE_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f64)                    \
        ROIPOOL_ALIGN_HALF_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f16, roipool_##isa##_f32) \
        ROIPOOL_ALIGN_HALF_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_bf16, roipool_##isa##_f32) \
    }

#endif /* ROIPOOL_SIMD_OPS_ALIGN_H */
