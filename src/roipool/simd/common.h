/* Shared by every SIMD file: includes, restrict, target attributes, names.
 *
 * Layout of the map block a kernel reads ("pixel-major, channels
 * contiguous"): element (h, w, c) lives at base[h * row_stride +
 * w * col_stride + c], so the channel loop is the SIMD loop.
 */
#ifndef ROIPOOL_SIMD_COMMON_H
#define ROIPOOL_SIMD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#define ROIPOOL_RESTRICT __restrict
#else
#define ROIPOOL_RESTRICT __restrict__
#endif

#if defined(__GNUC__) || defined(__clang__)
/* GCC/clang vector extensions: the baseline path's 16-byte vectors. */
#define ROIPOOL_VECTOR_EXT 1
#define ROIPOOL_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ROIPOOL_VECTOR_EXT 0
#define ROIPOOL_ALWAYS_INLINE inline
#endif

/* The bin max's inner loop is a few dozen instructions run billions of
 * times; where it starts relative to a 32-byte fetch window moved the
 * AVX-512 vgg16-frcnn forward by 8% between otherwise identical builds.
 * GCC aligns the kernel's loops (clang ignores this attribute). */
#if defined(__GNUC__) && !defined(__clang__)
#define ROIPOOL_ALIGN_LOOPS __attribute__((optimize("align-loops=32")))
#else
#define ROIPOOL_ALIGN_LOOPS
#endif

/* 512-bit vectors in the AVX-512 functions, not the 256 bits GCC prefers.
 * clang has no such target option (it drops the whole attribute for it,
 * then cannot inline the intrinsics) and keeps 512 bits for these
 * functions anyway: min_vector_width from the intrinsics they inline. */
#if defined(__clang__)
#define ROIPOOL_AVX512_WIDTH
#else
#define ROIPOOL_AVX512_WIDTH ",prefer-vector-width=512"
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
/* AVX2 and AVX-512 paths, compiled with target attributes and chosen at
 * run time (dispatch.h); the rest of the build stays baseline. */
#define ROIPOOL_X86_DISPATCH 1
/* F16C (float16 <-> float32 in registers) came with every AVX2 CPU. */
#define ROIPOOL_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#define ROIPOOL_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq" ROIPOOL_AVX512_WIDTH)))
#include <immintrin.h>
#else
#define ROIPOOL_X86_DISPATCH 0
#endif

#define ROIPOOL_CAT_(a, b) a##b
#define ROIPOOL_CAT(a, b) ROIPOOL_CAT_(a, b)

/* Element types by their suffix in kernel names (f32, f64, f16, bf16):
 *   roipool_<type>_t      storage: what data, out and the scratch hold
 *   roipool_<type>_ct     compute: init and vector lanes (float for halves)
 *   roipool_<type>_idx_t  argmax lanes, of the compute width (one compare
 *                         mask drives both)
 * f16 is IEEE binary16 and bf16 bfloat16, both as their 16-bit patterns;
 * their conversions are in fp16.h. ROIPOOL_LANES_<type>: the type whose
 * vector operations a table uses (halves compute in float32 vectors and
 * only load and store their own way). */
typedef float roipool_f32_t;
typedef float roipool_f32_ct;
typedef int32_t roipool_f32_idx_t;
typedef double roipool_f64_t;
typedef double roipool_f64_ct;
typedef int64_t roipool_f64_idx_t;
typedef uint16_t roipool_f16_t;
typedef float roipool_f16_ct;
typedef int32_t roipool_f16_idx_t;
typedef uint16_t roipool_bf16_t;
typedef float roipool_bf16_ct;
typedef int32_t roipool_bf16_idx_t;
#define ROIPOOL_LANES_f32 f32
#define ROIPOOL_LANES_f64 f64
#define ROIPOOL_LANES_f16 f32
#define ROIPOOL_LANES_bf16 f32

/* The map block one kernel call pools (see the layout above). */
typedef struct {
    const void *base;
    ptrdiff_t row_stride, col_stride; /* in elements */
    ptrdiff_t W;                      /* argmax of (h, w) is h * W + w */
    ptrdiff_t channels;               /* c in [0, channels) */
} roipool_block_t;

/* A read hint for the next chunk of a stream, to L2 (a chunk can be larger
 * than L1; the T0 hint made r50-c4 3% slower). No-op where unsupported. */
#if defined(__GNUC__) || defined(__clang__)
#define roipool_prefetch(p) __builtin_prefetch((const void *)(p), 0, 2)
#else
#define roipool_prefetch(p) ((void)(p))
#endif

#endif /* ROIPOOL_SIMD_COMMON_H */
