/* Results from the channel-minor scratch to out/argmax: transposes into the
 * channel-major [R, C, PH, PW] layout and streaming copies. */
#ifndef ROIPOOL_SIMD_STORE_H
#define ROIPOOL_SIMD_STORE_H

#include "common.h"

/* Copy nbins bins x nc channels of `size`-byte elements from src[k * ss + j]
 * to dst[j * ld + k] (ss is nc for the channel-minor scratch, the plane size
 * when RoIAlign gathers a tile of the map): 2-byte ones (float16/bfloat16 values), 4-byte ones
 * (float values, int32 argmax) and 8-byte ones (float64). The constant size
 * makes each memcpy one load and store. */
static ROIPOOL_ALWAYS_INLINE void roipool_transpose_elems(const void *ROIPOOL_RESTRICT src,
                                                          ptrdiff_t ss, ptrdiff_t nc,
                                                          ptrdiff_t nbins,
                                                          ptrdiff_t ld,
                                                          void *ROIPOOL_RESTRICT dst,
                                                          size_t size)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    ptrdiff_t j, k;
    for (j = 0; j < nc; ++j)
        for (k = 0; k < nbins; ++k) memcpy(d + (j * ld + k) * size, s + (k * ss + j) * size, size);
}

static void roipool_transpose16_base(const void *ROIPOOL_RESTRICT src, ptrdiff_t ss,
                                     ptrdiff_t nc, ptrdiff_t nbins, ptrdiff_t ld,
                                     void *ROIPOOL_RESTRICT dst)
{
    roipool_transpose_elems(src, ss, nc, nbins, ld, dst, 2);
}

static void roipool_transpose32_base(const void *ROIPOOL_RESTRICT src, ptrdiff_t ss,
                                     ptrdiff_t nc, ptrdiff_t nbins, ptrdiff_t ld,
                                     void *ROIPOOL_RESTRICT dst)
{
    roipool_transpose_elems(src, ss, nc, nbins, ld, dst, 4);
}

static void roipool_transpose64(const void *ROIPOOL_RESTRICT src, ptrdiff_t ss, ptrdiff_t nc,
                                ptrdiff_t nbins, ptrdiff_t ld, void *ROIPOOL_RESTRICT dst)
{
    roipool_transpose_elems(src, ss, nc, nbins, ld, dst, 8);
}

/* Copy n 4-byte words; the AVX2 version uses non-temporal stores where
 * the destination is 32-byte aligned: a large output is not read back soon,
 * and streaming skips the read-for-ownership of every destination line. */
static void roipool_stream32_base(const void *ROIPOOL_RESTRICT src, ptrdiff_t n,
                                  void *ROIPOOL_RESTRICT dst)
{
    memcpy(dst, src, (size_t)n * 4);
}

#if ROIPOOL_X86_DISPATCH
/* 8 x 8 tiles through AVX2 shuffles: the scalar copy costs one load and one
 * store per element and was as slow as the max itself. One tile: rows
 * s[q * nc ...] to columns d[q ...] of rows d[j * ld ...]. */
ROIPOOL_TARGET_AVX2 static ROIPOOL_ALWAYS_INLINE void roipool_tile32_avx2(
    const float *ROIPOOL_RESTRICT s, ptrdiff_t nc, float *ROIPOOL_RESTRICT d, ptrdiff_t ld)
{
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
    _mm256_storeu_ps(d + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* 8 x 8 tiles of 16-bit elements through 128-bit unpacks (three rounds:
 * 16-, 32- and 64-bit interleaves). */
ROIPOOL_TARGET_AVX2 static ROIPOOL_ALWAYS_INLINE void roipool_tile16_avx2(
    const uint16_t *ROIPOOL_RESTRICT s, ptrdiff_t nc, uint16_t *ROIPOOL_RESTRICT d,
    ptrdiff_t ld)
{
    __m128i r[8], t[8], u[8];
    int q;
    for (q = 0; q < 8; ++q) r[q] = _mm_loadu_si128((const __m128i *)(s + q * nc));
    for (q = 0; q < 4; ++q) {
        t[2 * q] = _mm_unpacklo_epi16(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm_unpackhi_epi16(r[2 * q], r[2 * q + 1]);
    }
    /* t[2q] holds channels 0-3 of rows 2q, 2q+1; t[2q+1] channels 4-7 */
    for (q = 0; q < 2; ++q) {
        u[4 * q] = _mm_unpacklo_epi32(t[4 * q], t[4 * q + 2]);
        u[4 * q + 1] = _mm_unpackhi_epi32(t[4 * q], t[4 * q + 2]);
        u[4 * q + 2] = _mm_unpacklo_epi32(t[4 * q + 1], t[4 * q + 3]);
        u[4 * q + 3] = _mm_unpackhi_epi32(t[4 * q + 1], t[4 * q + 3]);
    }
    /* u[q] (q < 4) holds channels 2q, 2q+1 of rows 0-3; u[q + 4] of rows 4-7 */
    for (q = 0; q < 4; ++q) {
        _mm_storeu_si128((__m128i *)(d + (2 * q) * ld), _mm_unpacklo_epi64(u[q], u[q + 4]));
        _mm_storeu_si128((__m128i *)(d + (2 * q + 1) * ld), _mm_unpackhi_epi64(u[q], u[q + 4]));
    }
}

/* The transposes by 8 x 8 tiles; src rows are ss elements apart. Past the last full
 * tile of a row of tiles (e.g. bin 48 of 7 x 7) one more tile ends at the
 * edge, overlapping the previous one: it rewrites a few elements with the
 * same values, and costs less than the scalar copy of what is left. Fewer
 * than 8 bins (or channels): scalar copies. */
#define ROIPOOL_TRANSPOSE_TILES(T, tile, ss)                                               \
    const T *src = (const T *)src_;                                                       \
    T *dst = (T *)dst_;                                                                   \
    ptrdiff_t j, k, jj, kk;                                                               \
    for (j = 0; j + 8 <= nc; j += 8) {                                                    \
        for (k = 0; k + 8 <= nbins; k += 8) tile(src + k * ss + j, ss, dst + j * ld + k, ld); \
        if (k < nbins && nbins >= 8)                                                      \
            tile(src + (nbins - 8) * ss + j, ss, dst + j * ld + nbins - 8, ld);           \
        else                                                                              \
            for (jj = j; jj < j + 8; ++jj)                                                \
                for (kk = k; kk < nbins; ++kk) dst[jj * ld + kk] = src[kk * ss + jj];     \
    }                                                                                     \
    for (; j < nc; ++j)                                                                   \
        for (k = 0; k < nbins; ++k) dst[j * ld + k] = src[k * ss + j];

ROIPOOL_TARGET_AVX2 static void roipool_transpose32_avx2_rows(
    const void *ROIPOOL_RESTRICT src_, ptrdiff_t ss, ptrdiff_t nc, ptrdiff_t nbins,
    ptrdiff_t ld, void *ROIPOOL_RESTRICT dst_)
{
    ROIPOOL_TRANSPOSE_TILES(float, roipool_tile32_avx2, ss)
}

#define roipool_transpose32_avx2 roipool_transpose32_avx2_rows

ROIPOOL_TARGET_AVX2 static void roipool_transpose16_avx2(const void *ROIPOOL_RESTRICT src_,
                                                         ptrdiff_t ss, ptrdiff_t nc,
                                                         ptrdiff_t nbins, ptrdiff_t ld,
                                                         void *ROIPOOL_RESTRICT dst_)
{
    ROIPOOL_TRANSPOSE_TILES(uint16_t, roipool_tile16_avx2, ss)
}
#undef ROIPOOL_TRANSPOSE_TILES

/* The streaming copy `name`, for vectors VT of W words: words up to a vector
 * boundary of dst, then four vectors per turn (the loop control was most of
 * the copy), then one, then words. */
#define ROIPOOL_STREAM_FN(name, target, W, VT, LOAD, STREAM)                             \
    target static void name(const void *ROIPOOL_RESTRICT src_, ptrdiff_t n,              \
                            void *ROIPOOL_RESTRICT dst_)                                 \
    {                                                                                    \
        const int32_t *src = (const int32_t *)src_;                                      \
        int32_t *dst = (int32_t *)dst_;                                                  \
        ptrdiff_t i = 0;                                                                 \
        if ((uintptr_t)dst & 3u) { /* not 4-byte aligned (16-bit outputs): plain copy */ \
            memcpy(dst_, src_, (size_t)n * 4);                                           \
            return;                                                                      \
        }                                                                                \
        while (i < n && ((uintptr_t)(dst + i) & (W * 4 - 1))) { dst[i] = src[i]; ++i; }  \
        for (; i + 4 * W <= n; i += 4 * W) {                                             \
            const VT a = LOAD((const VT *)(src + i)), b = LOAD((const VT *)(src + i + W)); \
            const VT c = LOAD((const VT *)(src + i + 2 * W));                            \
            const VT d = LOAD((const VT *)(src + i + 3 * W));                            \
            STREAM((VT *)(dst + i), a);                                                  \
            STREAM((VT *)(dst + i + W), b);                                              \
            STREAM((VT *)(dst + i + 2 * W), c);                                          \
            STREAM((VT *)(dst + i + 3 * W), d);                                          \
        }                                                                                \
        for (; i + W <= n; i += W) STREAM((VT *)(dst + i), LOAD((const VT *)(src + i))); \
        for (; i < n; ++i) dst[i] = src[i];                                              \
    }

ROIPOOL_STREAM_FN(roipool_stream32_avx2, ROIPOOL_TARGET_AVX2, 8, __m256i, _mm256_loadu_si256,
                  _mm256_stream_si256)

/* 16 x 16 tiles in zmm registers: 64 shuffles per 256 elements against 24
 * per 64 for the 8 x 8 AVX2 tile (the transposes were a quarter of the out=
 * call on vgg16-frcnn; 3.6 -> 2.9 ms on an AMD EPYC, Zen 5). Rows s[q * ss ...]
 * for q < nrows (the rest read as 0) to the first nrows columns of rows
 * d[j * ld ...], j < 16. */
ROIPOOL_TARGET_AVX512 static ROIPOOL_ALWAYS_INLINE void roipool_tile32_avx512(
    const float *ROIPOOL_RESTRICT s, ptrdiff_t ss, float *ROIPOOL_RESTRICT d, ptrdiff_t ld,
    int nrows)
{
    __m512 r[16], t[16];
    int q;
    for (q = 0; q < 16; ++q) r[q] = q < nrows ? _mm512_loadu_ps(s + q * ss) : _mm512_setzero_ps();
    for (q = 0; q < 8; ++q) {
        t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    /* r[4h + c], each 128-bit lane L: channel 4L + c of rows 4h .. 4h + 3 */
    for (q = 0; q < 4; ++q) {
        r[4 * q] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        r[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        r[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        r[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    /* lanes 0, 2 of rows 0-7 / 8-15 (0x88), lanes 1, 3 (0xDD) */
    for (q = 0; q < 4; ++q) {
        t[q] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
        t[4 + q] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
        t[8 + q] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
        t[12 + q] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
    }
    {
        const __mmask16 m = (__mmask16)((1u << nrows) - 1u);
        for (q = 0; q < 4; ++q) {
            _mm512_mask_storeu_ps(d + q * ld, m, _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88));
            _mm512_mask_storeu_ps(d + (8 + q) * ld, m, _mm512_shuffle_f32x4(t[q], t[8 + q], 0xDD));
            _mm512_mask_storeu_ps(d + (4 + q) * ld, m, _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0x88));
            _mm512_mask_storeu_ps(d + (12 + q) * ld, m,
                                  _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0xDD));
        }
    }
}

/* 16 x 16 tiles; the last 3 to 15 bins of a row of tiles by one tile of that
 * many rows (masked stores, nothing rewritten), 1 or 2 by scalar copies;
 * leftover channels by the AVX2 tiles. */
ROIPOOL_TARGET_AVX512 static void roipool_transpose32_avx512(const void *ROIPOOL_RESTRICT src_,
                                                             ptrdiff_t ss, ptrdiff_t nc,
                                                             ptrdiff_t nbins, ptrdiff_t ld,
                                                             void *ROIPOOL_RESTRICT dst_)
{
    const float *src = (const float *)src_;
    float *dst = (float *)dst_;
    const ptrdiff_t rest = nbins % 16, full = nbins - rest;
    ptrdiff_t j, k, jj;
    for (j = 0; j + 16 <= nc; j += 16) {
        for (k = 0; k < full; k += 16)
            roipool_tile32_avx512(src + k * ss + j, ss, dst + j * ld + k, ld, 16);
        if (rest > 2)
            roipool_tile32_avx512(src + full * ss + j, ss, dst + j * ld + full, ld, (int)rest);
        else
            for (jj = j; jj < j + 16; ++jj)
                for (k = full; k < nbins; ++k) dst[jj * ld + k] = src[k * ss + jj];
    }
    if (j < nc)
        roipool_transpose32_avx2_rows(src + j, ss, nc - j, nbins, ld, dst + j * ld);
}

/* As roipool_stream32_avx2, by whole 64-byte lines. */
ROIPOOL_STREAM_FN(roipool_stream32_avx512, ROIPOOL_TARGET_AVX512, 16, __m512i,
                  _mm512_loadu_si512, _mm512_stream_si512)
#undef ROIPOOL_STREAM_FN
#endif

/* Orders streaming stores before the parallel region ends. */
static inline void roipool_store_fence(void)
{
#if ROIPOOL_X86_DISPATCH
    _mm_sfence();
#endif
}

#endif /* ROIPOOL_SIMD_STORE_H */
