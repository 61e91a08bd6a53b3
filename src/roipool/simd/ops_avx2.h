/* Operation table of the AVX2 path (roipool_avx2_<type>_<op>; the ops are
 * listed in ops.h). max(v, b) is "v > b ? v : b" exactly (NaN
 * never wins, a tie keeps b), so the running max is one instruction off the
 * compare's dependency chain; the argmax lanes ride in float/double
 * registers for blendv. float16/bfloat16: load and store only (F16C; bfloat16
 * by 16-bit shifts, exact); they compute in the float vectors. */
#ifndef ROIPOOL_SIMD_OPS_AVX2_H
#define ROIPOOL_SIMD_OPS_AVX2_H

#include "common.h"

#if ROIPOOL_X86_DISPATCH

typedef __m256 roipool_avx2_f32_vt;
typedef __m256 roipool_avx2_f32_it;
typedef __m256 roipool_avx2_f32_mt;
typedef __m256i roipool_avx2_f32_kt;
enum { roipool_avx2_f32_lanes = 8 };
#define roipool_avx2_f32_load _mm256_loadu_ps
#define roipool_avx2_f32_set1 _mm256_set1_ps
#define roipool_avx2_f32_kset1(x) _mm256_set1_epi32((int32_t)(x))
#define roipool_avx2_f32_kinc(k) _mm256_add_epi32(k, _mm256_set1_epi32(1))
#define roipool_avx2_f32_kcast _mm256_castsi256_ps
#define roipool_avx2_f32_gt(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define roipool_avx2_f32_max _mm256_max_ps
#define roipool_avx2_f32_sel _mm256_blendv_ps
#define roipool_avx2_f32_store _mm256_storeu_ps
#define roipool_avx2_f32_istore(p, i) _mm256_storeu_ps((float *)(p), i)

typedef __m256d roipool_avx2_f64_vt;
typedef __m256d roipool_avx2_f64_it;
typedef __m256d roipool_avx2_f64_mt;
typedef __m256i roipool_avx2_f64_kt;
enum { roipool_avx2_f64_lanes = 4 };
#define roipool_avx2_f64_load _mm256_loadu_pd
#define roipool_avx2_f64_set1 _mm256_set1_pd
#define roipool_avx2_f64_kset1(x) _mm256_set1_epi64x((int64_t)(x))
#define roipool_avx2_f64_kinc(k) _mm256_add_epi64(k, _mm256_set1_epi64x(1))
#define roipool_avx2_f64_kcast _mm256_castsi256_pd
#define roipool_avx2_f64_gt(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define roipool_avx2_f64_max _mm256_max_pd
#define roipool_avx2_f64_sel _mm256_blendv_pd
#define roipool_avx2_f64_store _mm256_storeu_pd
#define roipool_avx2_f64_istore(p, i) _mm256_storeu_pd((double *)(p), i)

#define roipool_avx2_f16_load(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define roipool_avx2_f16_store(p, v) \
    _mm_storeu_si128((__m128i *)(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT))
#define roipool_avx2_bf16_load(p) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))

/* high halves of the 8 lanes, packed: the pack works per 128-bit lane, so
 * lanes 0-3 and 4-7 land in 64-bit quarters 0 and 2 */
ROIPOOL_TARGET_AVX2 static inline void roipool_avx2_bf16_store(roipool_bf16_t *p, __m256 v)
{
    const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(v), 16);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(hi, hi), 0x08);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}

/* ---- backward (backward.inc.h; round1, store_ct as in ops.h) ----
 * F16C's round trip rounds like roipool_round_half (ties to even,
 * subnormals, overflow to inf) and keeps the quiet NaNs of the sums.
 * bfloat16: roipool_round_bf16_sum in a vector register (through the
 * integer registers it made the backward 1.5x float32's). Lane 0 only: the
 * others are left undefined, which spares zeroing them. */
ROIPOOL_TARGET_AVX2 static inline __m128 roipool_avx2_lane0(float x)
{
    __m128 v = _mm_undefined_ps();
    v[0] = x;
    return v;
}

ROIPOOL_TARGET_AVX2 static inline float roipool_avx2_f16_round1(float x)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(roipool_avx2_lane0(x), _MM_FROUND_TO_NEAREST_INT)));
}

ROIPOOL_TARGET_AVX2 static inline float roipool_avx2_bf16_round1(float x)
{
    const __m128i u = _mm_castps_si128(roipool_avx2_lane0(x));
    const __m128i odd = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(1));
    const __m128i r = _mm_add_epi32(_mm_add_epi32(u, _mm_set1_epi32(0x7fff)), odd);
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_and_si128(r, _mm_set1_epi32((int)0xffff0000u))));
}
#define roipool_avx2_f16_store_ct roipool_avx2_f16_store

ROIPOOL_TARGET_AVX2 static inline void roipool_avx2_bf16_store_ct(roipool_bf16_t *p, __m256 v)
{
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    const __m256 q = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)),
                                  _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
    roipool_avx2_bf16_store(p, _mm256_blendv_ps(v, q, nan));
}

#endif /* ROIPOOL_X86_DISPATCH */
#endif /* ROIPOOL_SIMD_OPS_AVX2_H */
