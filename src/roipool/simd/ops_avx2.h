/* Operation table of the AVX2 path (roipool_avx2_<type>_<op>; the ops are
 * described in roi_max.inc.h). max(v, b) is "v > b ? v : b" exactly (NaN
 * never wins, a tie keeps b), so the running max is one instruction off the
 * compare's dependency chain; the argmax lanes ride in float/double
 * registers for blendv. */
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

#endif /* ROIPOOL_X86_DISPATCH */
#endif /* ROIPOOL_SIMD_OPS_AVX2_H */
