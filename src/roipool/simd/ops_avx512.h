/* Operation table of the AVX-512 path (roipool_avx512_<type>_<op>; the ops
 * are listed in ops.h): compare into a mask register, masked
 * move of the argmax lanes, max as on AVX2. float16/bfloat16: load and store
 * only (vcvtph2ps/vcvtps2ph; bfloat16 by 16-bit shifts, exact). */
#ifndef ROIPOOL_SIMD_OPS_AVX512_H
#define ROIPOOL_SIMD_OPS_AVX512_H

#include "common.h"

#if ROIPOOL_X86_DISPATCH

typedef __m512 roipool_avx512_f32_vt;
typedef __m512i roipool_avx512_f32_it;
typedef __mmask16 roipool_avx512_f32_mt;
typedef __m512i roipool_avx512_f32_kt;
enum { roipool_avx512_f32_lanes = 16 };
#define roipool_avx512_f32_load _mm512_loadu_ps
#define roipool_avx512_f32_set1 _mm512_set1_ps
#define roipool_avx512_f32_kset1(x) _mm512_set1_epi32((int32_t)(x))
#define roipool_avx512_f32_kinc(k) _mm512_add_epi32(k, _mm512_set1_epi32(1))
#define roipool_avx512_f32_kcast(k) (k)
#define roipool_avx512_f32_gt(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define roipool_avx512_f32_max _mm512_max_ps
#define roipool_avx512_f32_sel(i, k, m) _mm512_mask_mov_epi32(i, m, k)
#define roipool_avx512_f32_store _mm512_storeu_ps
#define roipool_avx512_f32_istore(p, i) _mm512_storeu_si512(p, i)

typedef __m512d roipool_avx512_f64_vt;
typedef __m512i roipool_avx512_f64_it;
typedef __mmask8 roipool_avx512_f64_mt;
typedef __m512i roipool_avx512_f64_kt;
enum { roipool_avx512_f64_lanes = 8 };
#define roipool_avx512_f64_load _mm512_loadu_pd
#define roipool_avx512_f64_set1 _mm512_set1_pd
#define roipool_avx512_f64_kset1(x) _mm512_set1_epi64((int64_t)(x))
#define roipool_avx512_f64_kinc(k) _mm512_add_epi64(k, _mm512_set1_epi64(1))
#define roipool_avx512_f64_kcast(k) (k)
#define roipool_avx512_f64_gt(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define roipool_avx512_f64_max _mm512_max_pd
#define roipool_avx512_f64_sel(i, k, m) _mm512_mask_mov_epi64(i, m, k)
#define roipool_avx512_f64_store _mm512_storeu_pd
#define roipool_avx512_f64_istore(p, i) _mm512_storeu_si512(p, i)

#define roipool_avx512_f16_load(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define roipool_avx512_f16_store(p, v) \
    _mm256_storeu_si256((__m256i *)(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT))
#define roipool_avx512_bf16_load(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define roipool_avx512_bf16_store(p, v) \
    _mm256_storeu_si256((__m256i *)(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)))

#endif /* ROIPOOL_X86_DISPATCH */
#endif /* ROIPOOL_SIMD_OPS_AVX512_H */
