/* Hot loops of roipool, compiled once per instruction set and chosen at import.
 *
 * The layout is "pixel-major, channels contiguous": element (h, w, c) of a
 * block lives at base[h * sH + w * sW + c].  One call pools one bin for `nc`
 * channels at once, so the channel loop is the SIMD loop: one compare and two
 * blends update 8 (AVX2) or 16 (AVX-512) channels and their argmax.
 *
 * The loops are plain C that the compiler vectorises; the same source is built
 * for baseline x86-64, AVX2 and AVX-512 through target attributes, so every
 * path computes the same exact max with the same strict ">" (first maximum in
 * row-major order wins, NaN never wins).
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
 * lane (int32 for float, int64 for double) so one compare mask drives both
 * blends; idx (scratch of that width) is used by the scalar fallback only. */
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
ROIPOOL_VTYPES(float, int32_t, 32, f8)
ROIPOOL_VTYPES(float, int32_t, 64, f16)
ROIPOOL_VTYPES(double, int64_t, 16, d2)
ROIPOOL_VTYPES(double, int64_t, 32, d4)
ROIPOOL_VTYPES(double, int64_t, 64, d8)

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
        for (j_ = 0; j_ < L; ++j_) idx_out[c + (J) * L + j_] = (int32_t)i##J[j_];   \
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
            for (h = hs; h < he; ++h)                                               \
                for (w = ws; w < we; ++w) {                                         \
                    const T *p = base + h * sH + w * sW + c;                        \
                    const roipool_vi##SUF k = (IDX_T)(h * W + w) - (roipool_vi##SUF){0}; \
                    ROIPOOL_STEP(SUF, 0) ROIPOOL_STEP(SUF, 1)                       \
                    ROIPOOL_STEP(SUF, 2) ROIPOOL_STEP(SUF, 3)                       \
                }                                                                   \
            ROIPOOL_SAVE(SUF, 0) ROIPOOL_SAVE(SUF, 1)                               \
            ROIPOOL_SAVE(SUF, 2) ROIPOOL_SAVE(SUF, 3)                               \
        }                                                                           \
        for (; c + L <= nc; c += L) {                                               \
            roipool_v##SUF b0 = vinit;                                              \
            roipool_vi##SUF i0 = vnone;                                             \
            for (h = hs; h < he; ++h)                                               \
                for (w = ws; w < we; ++w) {                                         \
                    const T *p = base + h * sH + w * sW + c;                        \
                    const roipool_vi##SUF k = (IDX_T)(h * W + w) - (roipool_vi##SUF){0}; \
                    ROIPOOL_STEP(SUF, 0)                                            \
                }                                                                   \
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
ROIPOOL_DEFINE_BIN_MAX(float, int32_t, f8, roipool_bin_max_f32_avx2, ROIPOOL_TARGET_AVX2)
ROIPOOL_DEFINE_BIN_MAX(double, int64_t, d4, roipool_bin_max_f64_avx2, ROIPOOL_TARGET_AVX2)
ROIPOOL_DEFINE_BIN_MAX(float, int32_t, f16, roipool_bin_max_f32_avx512, ROIPOOL_TARGET_AVX512)
ROIPOOL_DEFINE_BIN_MAX(double, int64_t, d8, roipool_bin_max_f64_avx512, ROIPOOL_TARGET_AVX512)
#endif

/* ---- results: channel-minor scratch -> out [c][bin] ------------------- */

/* Copy G bins x nc channels from src[k * nc + j] to dst[j * ld + k], for
 * 4-byte (float values, int32 argmax) and 8-byte (float64) elements. */
#define ROIPOOL_DEFINE_TRANSPOSE(NAME, ELEM_T)                                     \
    static void NAME(const void *ROIPOOL_RESTRICT src_, ptrdiff_t nc, ptrdiff_t G, \
                     ptrdiff_t ld, void *ROIPOOL_RESTRICT dst_)                    \
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

typedef void (*roipool_bin_max_f32_t)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, float, float *, int32_t *, int32_t *);
typedef void (*roipool_bin_max_f64_t)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                      ptrdiff_t, double, double *, int32_t *, int64_t *);

static roipool_bin_max_f32_t roipool_bin_max_f32 = roipool_bin_max_f32_base;
static roipool_bin_max_f64_t roipool_bin_max_f64 = roipool_bin_max_f64_base;

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
        roipool_bin_max_f32 = roipool_bin_max_f32_avx512;
        roipool_bin_max_f64 = roipool_bin_max_f64_avx512;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 2;
    }
    if (level >= 1 && roipool_isa_supported(1)) {
        roipool_bin_max_f32 = roipool_bin_max_f32_avx2;
        roipool_bin_max_f64 = roipool_bin_max_f64_avx2;
        roipool_transpose32 = roipool_transpose32_avx2;
        roipool_stream32 = roipool_stream32_avx2;
        return roipool_isa_level = 1;
    }
#endif
    (void)level;
    roipool_bin_max_f32 = roipool_bin_max_f32_base;
    roipool_bin_max_f64 = roipool_bin_max_f64_base;
    roipool_transpose32 = roipool_transpose32_base;
    roipool_stream32 = roipool_stream32_base;
    return roipool_isa_level = 0;
}

static int roipool_get_isa(void) { return roipool_isa_level; }

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
