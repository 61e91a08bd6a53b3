/* Hot loops of roipool, compiled once per instruction set and chosen at import.
 *
 * The layout is "pixel-major, channels contiguous": element (h, w, c) of a
 * block lives at base[h * sH + w * sW + c].  One call pools one bin for `nc`
 * channels at once, so the channel loop is the SIMD loop: a compare, a max
 * and a blend update 8 (AVX2) or 16 (AVX-512) channels and their argmax.
 *
 * The baseline path (SSE2 on x86-64, NEON on arm64) is plain C on vector
 * extensions; the AVX2 and AVX-512 paths are one intrinsics template built
 * under target attributes. Every path computes the same exact max with the
 * same strict ">" (first maximum in row-major order wins, NaN never wins), and
 * a block narrower than a path's vector goes to the next narrower path.
 */
#ifndef ROIPOOL_SIMD_H
#define ROIPOOL_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#define ROIPOOL_RESTRICT __restrict
#else
#define ROIPOOL_RESTRICT __restrict__
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define ROIPOOL_X86_DISPATCH 1
#define ROIPOOL_TARGET_AVX2 __attribute__((target("avx2")))
#define ROIPOOL_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")))
#else
#define ROIPOOL_X86_DISPATCH 0
#endif

/* One bin: max over rows [hs, he) x cols [ws, we) for nc channels, written
 * to best[0:nc] and idx_out[0:nc].  init is -FLT_MAX (SEMANTICS), or -inf for
 * the reduced-precision types.  The argmax lane has the width of the value
 * lane (int32 for float, int64 for double) so one compare mask drives the
 * argmax update; idx (scratch of that width, nc lanes) holds the x86 double
 * paths' int64 lanes before they are narrowed to idx_out. */
#define ROIPOOL_BIN_MAX_ARGS(T, IDX_T)                                              \
    const T *ROIPOOL_RESTRICT base, ptrdiff_t sH, ptrdiff_t sW, ptrdiff_t W,        \
        ptrdiff_t hs, ptrdiff_t he, ptrdiff_t ws, ptrdiff_t we, ptrdiff_t nc,       \
        T init, T *ROIPOOL_RESTRICT best, int32_t *ROIPOOL_RESTRICT idx_out,        \
        IDX_T *ROIPOOL_RESTRICT idx

/* Scalar channels [c, nc): the tail of the vector paths and the whole of the
 * fallback for compilers without vector extensions. */
#define ROIPOOL_BIN_MAX_SCALAR(T, IDX_T)                                            \
    for (; c < nc; ++c) {                                                           \
        T b = init;                                                                 \
        IDX_T i = -1;                                                               \
        ptrdiff_t h, w;                                                             \
        for (h = hs; h < he; ++h)                                                   \
            for (w = ws; w < we; ++w) {                                             \
                const T v = base[h * sH + w * sW + c];                              \
                if (v > b) { b = v; i = (IDX_T)(h * W + w); }                       \
            }                                                                       \
        best[c] = b;                                                                \
        idx_out[c] = (int32_t)i;                                                    \
    }

#if defined(__GNUC__) || defined(__clang__)
#define ROIPOOL_VECTOR_EXT 1
/* Vector types: aligned for registers, "_u" variants for unaligned loads. */
#define ROIPOOL_VTYPES(T, IDX_T, BYTES, SUF)                                        \
    typedef T roipool_v##SUF __attribute__((vector_size(BYTES)));                   \
    typedef T roipool_vu##SUF __attribute__((vector_size(BYTES), aligned(sizeof(T)), may_alias)); \
    typedef IDX_T roipool_vi##SUF __attribute__((vector_size(BYTES)));
ROIPOOL_VTYPES(float, int32_t, 16, f4)
ROIPOOL_VTYPES(double, int64_t, 16, d2)

/* One step of the running max: strict ">" keeps the first maximum and never
 * takes NaN; the blend is written with masks (C has no vector "?:"). */
#define ROIPOOL_STEP(SUF, J)                                                        \
    {                                                                               \
        const roipool_v##SUF v = *(const roipool_vu##SUF *)(p + (J) * L);           \
        const roipool_vi##SUF m = v > b##J;                                         \
        b##J = (roipool_v##SUF)(((roipool_vi##SUF)v & m) | ((roipool_vi##SUF)b##J & ~m)); \
        i##J = (k & m) | (i##J & ~m);                                               \
    }
#define ROIPOOL_SAVE(SUF, J)                                                        \
    {                                                                               \
        int j_;                                                                     \
        *(roipool_vu##SUF *)(best + c + (J) * L) = b##J;                            \
        if (sizeof(i##J[0]) == sizeof(int32_t)) /* float: one vector store */       \
            memcpy(idx_out + c + (J) * L, &i##J, sizeof(i##J));                     \
        else                                                                        \
            for (j_ = 0; j_ < L; ++j_) idx_out[c + (J) * L + j_] = (int32_t)i##J[j_]; \
    }

/* Four vectors of channels at a time stay in registers for the whole bin,
 * then one vector at a time, then scalars. */
#define ROIPOOL_DEFINE_BIN_MAX(T, IDX_T, SUF, NAME, ATTR)                           \
    ATTR static void NAME(ROIPOOL_BIN_MAX_ARGS(T, IDX_T))                           \
    {                                                                               \
        enum { L = (int)(sizeof(roipool_v##SUF) / sizeof(T)) };                     \
        ptrdiff_t c = 0, h, w;                                                      \
        const roipool_v##SUF vinit = init - (roipool_v##SUF){0};                    \
        const roipool_vi##SUF vnone = -1 - (roipool_vi##SUF){0};                    \
        (void)idx;                                                                  \
        for (; c + 4 * L <= nc; c += 4 * L) {                                       \
            roipool_v##SUF b0 = vinit, b1 = vinit, b2 = vinit, b3 = vinit;          \
            roipool_vi##SUF i0 = vnone, i1 = vnone, i2 = vnone, i3 = vnone;         \
            for (h = hs; h < he; ++h) {                                             \
                roipool_vi##SUF k = (IDX_T)(h * W + ws) - (roipool_vi##SUF){0};     \
                for (w = ws; w < we; ++w, k += 1) {                                 \
                    const T *p = base + h * sH + w * sW + c;                        \
                    ROIPOOL_STEP(SUF, 0) ROIPOOL_STEP(SUF, 1)                       \
                    ROIPOOL_STEP(SUF, 2) ROIPOOL_STEP(SUF, 3)                       \
                }                                                                   \
            }                                                                       \
            ROIPOOL_SAVE(SUF, 0) ROIPOOL_SAVE(SUF, 1)                               \
            ROIPOOL_SAVE(SUF, 2) ROIPOOL_SAVE(SUF, 3)                               \
        }                                                                           \
        for (; c + L <= nc; c += L) {                                               \
            roipool_v##SUF b0 = vinit;                                              \
            roipool_vi##SUF i0 = vnone;                                             \
            for (h = hs; h < he; ++h) {                                             \
                roipool_vi##SUF k = (IDX_T)(h * W + ws) - (roipool_vi##SUF){0};     \
                for (w = ws; w < we; ++w, k += 1) {                                 \
                    const T *p = base + h * sH + w * sW + c;                        \
                    ROIPOOL_STEP(SUF, 0)                                            \
                }                                                                   \
            }                                                                       \
            ROIPOOL_SAVE(SUF, 0)                                                    \
        }                                                                           \
        ROIPOOL_BIN_MAX_SCALAR(T, IDX_T)                                            \
    }
#else
#define ROIPOOL_VECTOR_EXT 0
#define ROIPOOL_DEFINE_BIN_MAX(T, IDX_T, SUF, NAME, ATTR)                           \
    static void NAME(ROIPOOL_BIN_MAX_ARGS(T, IDX_T))                                \
    {                                                                               \
        ptrdiff_t c = 0;                                                            \
        (void)idx;                                                                  \
        ROIPOOL_BIN_MAX_SCALAR(T, IDX_T)                                            \
    }
#endif

/* Baseline: 16-byte vectors (SSE2 on x86-64, NEON on arm64). */
ROIPOOL_DEFINE_BIN_MAX(float, int32_t, f4, roipool_bin_max_f32_base, )
ROIPOOL_DEFINE_BIN_MAX(double, int64_t, d2, roipool_bin_max_f64_base, )

#if ROIPOOL_X86_DISPATCH
#include <immintrin.h>
/* x86 paths in intrinsics: MAX(v, b) is "v > b ? v : b" exactly (NaN never
 * wins, a tie keeps b), so the running max is one max instruction off the
 * compare's dependency chain and only the argmax needs the mask; ~10% faster
 * than the blend form above. The operations P_OP are defined per ISA
 * and element type below (P = AVX2F, AVX2D, AVX512F, AVX512D). */
#define ROIPOOL_XSTEP(P, J)                                                         \
    {                                                                               \
        const P##_VT v = P##_LOAD(p + (J) * XL);                                    \
        const P##_MT m = P##_GT(v, b##J);                                           \
        b##J = P##_MAX(v, b##J);                                                    \
        i##J = P##_SEL(i##J, k, m);                                                 \
    }
/* float: argmax lanes are int32 and go straight to idx_out; double: int64
 * lanes go to idx and are narrowed after the vector part. */
#define ROIPOOL_XSAVE(P, J)                                                         \
    P##_STORE(best + c + (J) * XL, b##J);                                           \
    P##_ISTORE(sizeof(x_idx_t) == 4 ? (void *)(idx_out + c + (J) * XL)              \
                                : (void *)(idx + c + (J) * XL), i##J);
#define ROIPOOL_XBIN(P, STEPS)                                                      \
    for (h = hs; h < he; ++h) {                                                     \
        P##_KT kv = P##_KSET1((x_idx_t)(h * W + ws));                               \
        for (w = ws; w < we; ++w, kv = P##_KINC(kv)) {                              \
            const x_t *p = base + h * sH + w * sW + c;                              \
            const P##_IT k = P##_KCAST(kv);                                         \
            STEPS                                                                   \
        }                                                                           \
    }
#define ROIPOOL_DEFINE_BIN_MAX_X86(P, T, IDX_T, L, NAME, ATTR, NARROW)              \
    ATTR static void NAME(ROIPOOL_BIN_MAX_ARGS(T, IDX_T))                           \
    {                                                                               \
        typedef T x_t; /* names for the ROIPOOL_X* helper macros */                 \
        typedef IDX_T x_idx_t;                                                      \
        enum { XL = L };                                                            \
        ptrdiff_t c = 0, h, w, j;                                                   \
        const P##_VT vinit = P##_SET1(init);                                        \
        const P##_IT vnone = P##_KCAST(P##_KSET1(-1));                              \
        for (; c + 4 * L <= nc; c += 4 * L) {                                       \
            P##_VT b0 = vinit, b1 = vinit, b2 = vinit, b3 = vinit;                  \
            P##_IT i0 = vnone, i1 = vnone, i2 = vnone, i3 = vnone;                  \
            ROIPOOL_XBIN(P, ROIPOOL_XSTEP(P, 0) ROIPOOL_XSTEP(P, 1)                 \
                            ROIPOOL_XSTEP(P, 2) ROIPOOL_XSTEP(P, 3))                \
            ROIPOOL_XSAVE(P, 0) ROIPOOL_XSAVE(P, 1)                                 \
            ROIPOOL_XSAVE(P, 2) ROIPOOL_XSAVE(P, 3)                                 \
        }                                                                           \
        if (c + 2 * XL <= nc) { /* two chains beat one (blocks of 2L channels) */   \
            P##_VT b0 = vinit, b1 = vinit;                                          \
            P##_IT i0 = vnone, i1 = vnone;                                          \
            ROIPOOL_XBIN(P, ROIPOOL_XSTEP(P, 0) ROIPOOL_XSTEP(P, 1))                \
            ROIPOOL_XSAVE(P, 0) ROIPOOL_XSAVE(P, 1)                                 \
            c += 2 * XL;                                                            \
        }                                                                           \
        for (; c + L <= nc; c += L) {                                               \
            P##_VT b0 = vinit;                                                      \
            P##_IT i0 = vnone;                                                      \
            ROIPOOL_XBIN(P, ROIPOOL_XSTEP(P, 0))                                    \
            ROIPOOL_XSAVE(P, 0)                                                     \
        }                                                                           \
        if (sizeof(IDX_T) != 4)                                                     \
            for (j = 0; j < c; ++j) idx_out[j] = (int32_t)idx[j];                   \
        /* fewer than L channels left (a small C or block): the next narrower       \
         * path, not scalar code */                                                 \
        if (c < nc)                                                                 \
            NARROW(base + c, sH, sW, W, hs, he, ws, we, nc - c, init, best + c,     \
                   idx_out + c, idx + c);                                           \
    }

/* AVX2: the argmax lanes ride in float/double registers for blendv. */
#define AVX2F_VT __m256
#define AVX2F_IT __m256
#define AVX2F_MT __m256
#define AVX2F_KT __m256i
#define AVX2F_LOAD _mm256_loadu_ps
#define AVX2F_SET1 _mm256_set1_ps
#define AVX2F_KSET1(x) _mm256_set1_epi32((int32_t)(x))
#define AVX2F_KINC(k) _mm256_add_epi32(k, _mm256_set1_epi32(1))
#define AVX2F_KCAST _mm256_castsi256_ps
#define AVX2F_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define AVX2F_MAX _mm256_max_ps
#define AVX2F_SEL _mm256_blendv_ps
#define AVX2F_STORE _mm256_storeu_ps
#define AVX2F_ISTORE(p, i) _mm256_storeu_ps((float *)(p), i)
ROIPOOL_DEFINE_BIN_MAX_X86(AVX2F, float, int32_t, 8,
                           roipool_bin_max_f32_avx2, ROIPOOL_TARGET_AVX2,
                           roipool_bin_max_f32_base)
#define AVX2D_VT __m256d
#define AVX2D_IT __m256d
#define AVX2D_MT __m256d
#define AVX2D_KT __m256i
#define AVX2D_LOAD _mm256_loadu_pd
#define AVX2D_SET1 _mm256_set1_pd
#define AVX2D_KSET1(x) _mm256_set1_epi64x((int64_t)(x))
#define AVX2D_KINC(k) _mm256_add_epi64(k, _mm256_set1_epi64x(1))
#define AVX2D_KCAST _mm256_castsi256_pd
#define AVX2D_GT(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define AVX2D_MAX _mm256_max_pd
#define AVX2D_SEL _mm256_blendv_pd
#define AVX2D_STORE _mm256_storeu_pd
#define AVX2D_ISTORE(p, i) _mm256_storeu_pd((double *)(p), i)
ROIPOOL_DEFINE_BIN_MAX_X86(AVX2D, double, int64_t, 4,
                           roipool_bin_max_f64_avx2, ROIPOOL_TARGET_AVX2,
                           roipool_bin_max_f64_base)

/* AVX-512: compare into a mask register, masked move of the index. */
#define AVX512F_VT __m512
#define AVX512F_IT __m512i
#define AVX512F_MT __mmask16
#define AVX512F_KT __m512i
#define AVX512F_LOAD _mm512_loadu_ps
#define AVX512F_SET1 _mm512_set1_ps
#define AVX512F_KSET1(x) _mm512_set1_epi32((int32_t)(x))
#define AVX512F_KINC(k) _mm512_add_epi32(k, _mm512_set1_epi32(1))
#define AVX512F_KCAST(k) (k)
#define AVX512F_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define AVX512F_MAX _mm512_max_ps
#define AVX512F_SEL(i, k, m) _mm512_mask_mov_epi32(i, m, k)
#define AVX512F_STORE _mm512_storeu_ps
#define AVX512F_ISTORE(p, i) _mm512_storeu_si512(p, i)
ROIPOOL_DEFINE_BIN_MAX_X86(AVX512F, float, int32_t, 16,
                           roipool_bin_max_f32_avx512, ROIPOOL_TARGET_AVX512,
                           roipool_bin_max_f32_avx2)
#define AVX512D_VT __m512d
#define AVX512D_IT __m512i
#define AVX512D_MT __mmask8
#define AVX512D_KT __m512i
#define AVX512D_LOAD _mm512_loadu_pd
#define AVX512D_SET1 _mm512_set1_pd
#define AVX512D_KSET1(x) _mm512_set1_epi64((int64_t)(x))
#define AVX512D_KINC(k) _mm512_add_epi64(k, _mm512_set1_epi64(1))
#define AVX512D_KCAST(k) (k)
#define AVX512D_GT(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define AVX512D_MAX _mm512_max_pd
#define AVX512D_SEL(i, k, m) _mm512_mask_mov_epi64(i, m, k)
#define AVX512D_STORE _mm512_storeu_pd
#define AVX512D_ISTORE(p, i) _mm512_storeu_si512(p, i)
ROIPOOL_DEFINE_BIN_MAX_X86(AVX512D, double, int64_t, 8,
                           roipool_bin_max_f64_avx512, ROIPOOL_TARGET_AVX512,
                           roipool_bin_max_f64_avx2)
#endif

/* Bins [k0, k1) of one ROI: g holds its clipped bounds hs[PH], he[PH],
 * ws[PW], we[PW]; bin k goes to res[(k - k0) * nc ...] and ires likewise.
 * One call per ROI instead of one indirect call per bin: most bins of a
 * detector cover a few pixels, where the call cost more than the max. */
#define ROIPOOL_DEFINE_ROI_MAX(T, IDX_T, NAME, BIN, ATTR)                           \
    ATTR static void NAME(const T *ROIPOOL_RESTRICT base, ptrdiff_t sH, ptrdiff_t sW, \
                          ptrdiff_t W, const ptrdiff_t *g, ptrdiff_t PH, ptrdiff_t PW,  \
                          ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t nc, T init,         \
                          T *ROIPOOL_RESTRICT res, int32_t *ROIPOOL_RESTRICT ires,  \
                          IDX_T *ROIPOOL_RESTRICT idx)                              \
    {                                                                               \
        ptrdiff_t k, j;                                                             \
        for (k = k0; k < k1; ++k) {                                                 \
            const ptrdiff_t ph = k / PW, pw = k - ph * PW;                          \
            const ptrdiff_t hs = g[ph], he = g[PH + ph];                            \
            const ptrdiff_t ws = g[2 * PH + pw], we = g[2 * PH + PW + pw];          \
            T *best = res + (k - k0) * nc;                                          \
            int32_t *bi = ires + (k - k0) * nc;                                     \
            if (he <= hs || we <= ws) { /* empty bin: 0, argmax -1 */               \
                for (j = 0; j < nc; ++j) { best[j] = 0; bi[j] = -1; }               \
            } else {                                                                \
                BIN(base, sH, sW, W, hs, he, ws, we, nc, init, best, bi, idx);      \
            }                                                                       \
        }                                                                           \
    }
ROIPOOL_DEFINE_ROI_MAX(float, int32_t, roipool_roi_max_f32_base, roipool_bin_max_f32_base, )
ROIPOOL_DEFINE_ROI_MAX(double, int64_t, roipool_roi_max_f64_base, roipool_bin_max_f64_base, )
#if ROIPOOL_X86_DISPATCH
ROIPOOL_DEFINE_ROI_MAX(float, int32_t, roipool_roi_max_f32_avx2, roipool_bin_max_f32_avx2,
                       ROIPOOL_TARGET_AVX2)
ROIPOOL_DEFINE_ROI_MAX(double, int64_t, roipool_roi_max_f64_avx2, roipool_bin_max_f64_avx2,
                       ROIPOOL_TARGET_AVX2)
ROIPOOL_DEFINE_ROI_MAX(float, int32_t, roipool_roi_max_f32_avx512, roipool_bin_max_f32_avx512,
                       ROIPOOL_TARGET_AVX512)
ROIPOOL_DEFINE_ROI_MAX(double, int64_t, roipool_roi_max_f64_avx512, roipool_bin_max_f64_avx512,
                       ROIPOOL_TARGET_AVX512)
#endif

/* ---- results: channel-minor scratch -> out [c][bin] ------------------- */

/* Copy G bins x nc channels from src[k * nc + j] to dst[j * ld + k], for
 * 4-byte (float values, int32 argmax) and 8-byte (float64) elements. */
#define ROIPOOL_DEFINE_TRANSPOSE(NAME, ELEM_T)                                      \
    static void NAME(const void *ROIPOOL_RESTRICT src_, ptrdiff_t nc, ptrdiff_t G,  \
                     ptrdiff_t ld, void *ROIPOOL_RESTRICT dst_)                     \
    {                                                                               \
        const ELEM_T *src = (const ELEM_T *)src_;                                   \
        ELEM_T *dst = (ELEM_T *)dst_;                                               \
        ptrdiff_t j, k;                                                             \
        for (j = 0; j < nc; ++j)                                                    \
            for (k = 0; k < G; ++k) dst[j * ld + k] = src[k * nc + j];              \
    }
ROIPOOL_DEFINE_TRANSPOSE(roipool_transpose32_base, int32_t)
ROIPOOL_DEFINE_TRANSPOSE(roipool_transpose64, int64_t)

#if ROIPOOL_X86_DISPATCH
#include <immintrin.h>
/* 8 x 8 tiles through AVX2 shuffles: the scalar copy costs one load and one
 * store per element and was as slow as the max itself. */
ROIPOOL_TARGET_AVX2 static void roipool_transpose32_avx2(const void *ROIPOOL_RESTRICT src_,
                                                         ptrdiff_t nc, ptrdiff_t G, ptrdiff_t ld,
                                                         void *ROIPOOL_RESTRICT dst_)
{
    const float *src = (const float *)src_;
    float *dst = (float *)dst_;
    ptrdiff_t j, k, jj, kk;
    for (j = 0; j + 8 <= nc; j += 8) {
        for (k = 0; k + 8 <= G; k += 8) {
            const float *s = src + k * nc + j;
            __m256 r0 = _mm256_loadu_ps(s + 0 * nc), r1 = _mm256_loadu_ps(s + 1 * nc);
            __m256 r2 = _mm256_loadu_ps(s + 2 * nc), r3 = _mm256_loadu_ps(s + 3 * nc);
            __m256 r4 = _mm256_loadu_ps(s + 4 * nc), r5 = _mm256_loadu_ps(s + 5 * nc);
            __m256 r6 = _mm256_loadu_ps(s + 6 * nc), r7 = _mm256_loadu_ps(s + 7 * nc);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + j * ld + k;
            _mm256_storeu_ps(d + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (jj = j; jj < j + 8; ++jj)
            for (kk = k; kk < G; ++kk) dst[jj * ld + kk] = src[kk * nc + jj];
    }
    for (; j < nc; ++j)
        for (k = 0; k < G; ++k) dst[j * ld + k] = src[k * nc + j];
}
#endif

/* Copy n 4-byte elements to memory with non-temporal stores where the
 * destination is 32-byte aligned: a large output is not read back soon, and
 * streaming skips the read-for-ownership of every destination line. */
static void roipool_stream32_base(const void *ROIPOOL_RESTRICT src, ptrdiff_t n,
                                  void *ROIPOOL_RESTRICT dst)
{
    memcpy(dst, src, (size_t)n * 4);
}

#if ROIPOOL_X86_DISPATCH
ROIPOOL_TARGET_AVX2 static void roipool_stream32_avx2(const void *ROIPOOL_RESTRICT src_,
                                                      ptrdiff_t n, void *ROIPOOL_RESTRICT dst_)
{
    const int32_t *src = (const int32_t *)src_;
    int32_t *dst = (int32_t *)dst_;
    ptrdiff_t i = 0;
    while (i < n && ((uintptr_t)(dst + i) & 31u)) { dst[i] = src[i]; ++i; }
    if ((uintptr_t)(dst + i) & 3u) { /* not even 4-byte aligned: plain copy */
        memcpy(dst + i, src + i, (size_t)(n - i) * 4);
        return;
    }
    for (; i + 8 <= n; i += 8)
        _mm256_stream_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
    for (; i < n; ++i) dst[i] = src[i];
}
#endif

/* Orders streaming stores before the parallel region ends. */
static inline void roipool_store_fence(void)
{
#if ROIPOOL_X86_DISPATCH
    _mm_sfence();
#endif
}

typedef void (*roipool_stream32_t)(const void *, ptrdiff_t, void *);
static roipool_stream32_t roipool_stream32 = roipool_stream32_base;

typedef void (*roipool_transpose32_t)(const void *, ptrdiff_t, ptrdiff_t, ptrdiff_t, void *);
static roipool_transpose32_t roipool_transpose32 = roipool_transpose32_base;

typedef void (*roipool_roi_max_f32_t)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      const ptrdiff_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, ptrdiff_t, float, float *, int32_t *,
                                      int32_t *);
typedef void (*roipool_roi_max_f64_t)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      const ptrdiff_t *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, ptrdiff_t, double, double *, int32_t *,
                                      int64_t *);

static roipool_roi_max_f32_t roipool_roi_max_f32 = roipool_roi_max_f32_base;
static roipool_roi_max_f64_t roipool_roi_max_f64 = roipool_roi_max_f64_base;

/* ISA levels: 0 baseline, 1 AVX2, 2 AVX-512. */
static int roipool_isa_supported(int level)
{
    if (level == 0) return 1;
#if ROIPOOL_X86_DISPATCH
    __builtin_cpu_init();
    if (level == 1) return __builtin_cpu_supports("avx2");
    if (level == 2)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

static int roipool_isa_level = 0;

/* Select the path; returns the level in use. Not thread-safe by design: the
 * Python layer calls it at import and from set_isa() only. */
static int roipool_set_isa(int level)
{
#if ROIPOOL_X86_DISPATCH
    if (level == 2 && roipool_isa_supported(2)) {
        roipool_roi_max_f32 = roipool_roi_max_f32_avx512;
        roipool_roi_max_f64 = roipool_roi_max_f64_avx512;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 2;
    }
    if (level >= 1 && roipool_isa_supported(1)) {
        roipool_roi_max_f32 = roipool_roi_max_f32_avx2;
        roipool_roi_max_f64 = roipool_roi_max_f64_avx2;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 1;
    }
#endif
    (void)level;
    roipool_roi_max_f32 = roipool_roi_max_f32_base;
    roipool_roi_max_f64 = roipool_roi_max_f64_base;
    roipool_transpose32 = roipool_transpose32_base;
    roipool_stream32 = roipool_stream32_base;
    return roipool_isa_level = 0;
}

static int roipool_get_isa(void) { return roipool_isa_level; }

/* L2 cache bytes per core where the C library reports it (glibc), else 0;
 * it sizes the channel blocks (roipool._config.block_budget). */
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
static long roipool_l2_cache_bytes(void)
{
#if defined(_SC_LEVEL2_CACHE_SIZE)
    long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? v : 0;
#else
    return 0;
#endif
}

/* A read hint for the next chunk of a stream, to L2 (a chunk can be larger
 * than L1; the T0 hint made r50-c4 3% slower). No-op where unsupported. */
#if defined(__GNUC__) || defined(__clang__)
#define roipool_prefetch(p) __builtin_prefetch((const void *)(p), 0, 2)
#else
#define roipool_prefetch(p) ((void)(p))
#endif

/* ---- reduced precision ------------------------------------------------- */

static inline uint32_t roipool_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float roipool_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE binary16 -> float32, exact. */
static inline float roipool_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return roipool_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2**-24, exact in float32 */
        float f = (float)man * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    return roipool_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float32 -> nearest binary16 (ties to even) -> float32: the "round to T"
 * step of MXNet's half_t arithmetic. */
static inline float roipool_round_half(float f)
{
    uint32_t u = roipool_f32_bits(f);
    uint32_t sign = u & 0x80000000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t h;
    if (a >= 0x7f800000u) { /* inf or NaN */
        return f;
    }
    if (a >= 0x477ff000u) { /* >= 65520 rounds to inf */
        h = 0x7c00u;
    } else if (a < 0x38800000u) { /* below the smallest normal half: subnormal */
        /* a value of m * 2**-24 with m rounded to nearest even */
        float af = roipool_bits_f32(a);
        float m = af * 16777216.0f; /* exact scaling by 2**24 */
        /* round to nearest even integer via the float trick (m < 1024) */
        float r = (m + 8388608.0f) - 8388608.0f;
        h = (uint32_t)r;
    } else {
        uint32_t mant_odd = (a >> 13) & 1u;
        a += 0xfffu + mant_odd; /* ties to even */
        h = ((a - 0x38000000u) >> 13) & 0x7fffu;
    }
    return roipool_half_to_float((uint16_t)((sign >> 16) | h));
}

/* float32 -> nearest bfloat16 (ties to even) -> float32. */
static inline float roipool_round_bf16(float f)
{
    uint32_t u = roipool_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return f; /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return roipool_bits_f32(u & 0xffff0000u);
}

static inline float roipool_bf16_to_float(uint16_t b) { return roipool_bits_f32((uint32_t)b << 16); }

#endif /* ROIPOOL_SIMD_H */
