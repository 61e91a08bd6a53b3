/* Operation table of the baseline path: 16-byte GCC/clang vector extensions
 * (SSE2 on x86-64, NEON on arm64), plain C that every CPU of the target
 * runs. Names: roipool_base_<type>_<op>; the ops are listed in ops.h.
 * C has no vector "?:", so max and select are written with masks.
 * float16/bfloat16 (roipool_base_f16_/bf16_): load and store only; they
 * compute in the float vectors (ROIPOOL_LANES_<type>, common.h). */
#ifndef ROIPOOL_SIMD_OPS_BASE_H
#define ROIPOOL_SIMD_OPS_BASE_H

#include "common.h"
#include "fp16.h"

#if ROIPOOL_VECTOR_EXT

/* float: 4 lanes; argmax lanes int32 */
typedef float roipool_base_f32_vt __attribute__((vector_size(16)));
typedef float roipool_base_f32_vu __attribute__((vector_size(16), aligned(4), may_alias));
typedef int32_t roipool_base_f32_it __attribute__((vector_size(16)));
typedef roipool_base_f32_it roipool_base_f32_mt;
typedef roipool_base_f32_it roipool_base_f32_kt;
enum { roipool_base_f32_lanes = 4 };

static inline roipool_base_f32_vt roipool_base_f32_load(const float *p)
{ return *(const roipool_base_f32_vu *)p; }
static inline roipool_base_f32_vt roipool_base_f32_set1(float x)
{ return x - (roipool_base_f32_vt){0}; }
static inline roipool_base_f32_kt roipool_base_f32_kset1(int32_t x)
{ return x - (roipool_base_f32_kt){0}; }
static inline roipool_base_f32_kt roipool_base_f32_kinc(roipool_base_f32_kt k) { return k + 1; }
static inline roipool_base_f32_it roipool_base_f32_kcast(roipool_base_f32_kt k) { return k; }
static inline roipool_base_f32_mt roipool_base_f32_gt(roipool_base_f32_vt a, roipool_base_f32_vt b)
{ return a > b; }
static inline roipool_base_f32_vt roipool_base_f32_max(roipool_base_f32_vt v, roipool_base_f32_vt b)
{
    const roipool_base_f32_mt m = v > b;
    return (roipool_base_f32_vt)(((roipool_base_f32_it)v & m) | ((roipool_base_f32_it)b & ~m));
}
static inline roipool_base_f32_it roipool_base_f32_sel(roipool_base_f32_it i, roipool_base_f32_it k,
                                                       roipool_base_f32_mt m)
{ return (k & m) | (i & ~m); }
static inline void roipool_base_f32_store(float *p, roipool_base_f32_vt v)
{ *(roipool_base_f32_vu *)p = v; }
static inline void roipool_base_f32_istore(void *p, roipool_base_f32_it i)
{ memcpy(p, &i, sizeof i); }

/* double: 2 lanes; argmax lanes int64 */
typedef double roipool_base_f64_vt __attribute__((vector_size(16)));
typedef double roipool_base_f64_vu __attribute__((vector_size(16), aligned(8), may_alias));
typedef int64_t roipool_base_f64_it __attribute__((vector_size(16)));
typedef roipool_base_f64_it roipool_base_f64_mt;
typedef roipool_base_f64_it roipool_base_f64_kt;
enum { roipool_base_f64_lanes = 2 };

static inline roipool_base_f64_vt roipool_base_f64_load(const double *p)
{ return *(const roipool_base_f64_vu *)p; }
static inline roipool_base_f64_vt roipool_base_f64_set1(double x)
{ return x - (roipool_base_f64_vt){0}; }
static inline roipool_base_f64_kt roipool_base_f64_kset1(int64_t x)
{ return x - (roipool_base_f64_kt){0}; }
static inline roipool_base_f64_kt roipool_base_f64_kinc(roipool_base_f64_kt k) { return k + 1; }
static inline roipool_base_f64_it roipool_base_f64_kcast(roipool_base_f64_kt k) { return k; }
static inline roipool_base_f64_mt roipool_base_f64_gt(roipool_base_f64_vt a, roipool_base_f64_vt b)
{ return a > b; }
static inline roipool_base_f64_vt roipool_base_f64_max(roipool_base_f64_vt v, roipool_base_f64_vt b)
{
    const roipool_base_f64_mt m = v > b;
    return (roipool_base_f64_vt)(((roipool_base_f64_it)v & m) | ((roipool_base_f64_it)b & ~m));
}
static inline roipool_base_f64_it roipool_base_f64_sel(roipool_base_f64_it i, roipool_base_f64_it k,
                                                       roipool_base_f64_mt m)
{ return (k & m) | (i & ~m); }
static inline void roipool_base_f64_store(double *p, roipool_base_f64_vt v)
{ *(roipool_base_f64_vu *)p = v; }
static inline void roipool_base_f64_istore(void *p, roipool_base_f64_it i)
{ memcpy(p, &i, sizeof i); }

/* halves: 4 storage elements <-> one float vector, exact both ways */
typedef uint16_t roipool_base_u16x4 __attribute__((vector_size(8)));
typedef uint32_t roipool_base_u32x4 __attribute__((vector_size(16)));

static inline roipool_base_u32x4 roipool_base_widen16(const uint16_t *p)
{
    roipool_base_u16x4 h;
    memcpy(&h, p, sizeof h);
    return __builtin_convertvector(h, roipool_base_u32x4);
}

static inline roipool_base_f32_vt roipool_base_bf16_load(const roipool_bf16_t *p)
{ return (roipool_base_f32_vt)(roipool_base_widen16(p) << 16); }

/* binary16 -> float32 by moving the fields: normal numbers rebias the
 * exponent, inf/NaN get the float one, zeros/subnormals are m * 2**-24. */
static inline roipool_base_f32_vt roipool_base_f16_load(const roipool_f16_t *p)
{
    const roipool_base_u32x4 h = roipool_base_widen16(p);
    const roipool_base_u32x4 em = (h & 0x7fffu) << 13;
    const roipool_base_f32_it e = (roipool_base_f32_it)(em & 0x0f800000u);
    const roipool_base_f32_it special = e == 0x0f800000, tiny = e == 0;
    const roipool_base_u32x4 normal = em + (112u << 23) + ((roipool_base_u32x4)special & (112u << 23));
    const roipool_base_f32_vt sub =
        __builtin_convertvector((roipool_base_f32_it)(em >> 13), roipool_base_f32_vt) *
        5.9604644775390625e-08f;
    const roipool_base_u32x4 mag = ((roipool_base_u32x4)tiny & (roipool_base_u32x4)sub) |
                                   (~(roipool_base_u32x4)tiny & normal);
    return (roipool_base_f32_vt)(((h & 0x8000u) << 16) | mag);
}

static inline void roipool_base_f16_store(roipool_f16_t *p, roipool_base_f32_vt v)
{
    int j;
    for (j = 0; j < roipool_base_f32_lanes; ++j) p[j] = roipool_f16_from_ct(v[j]);
}

static inline void roipool_base_bf16_store(roipool_bf16_t *p, roipool_base_f32_vt v)
{
    roipool_base_u16x4 h = __builtin_convertvector((roipool_base_u32x4)v >> 16, roipool_base_u16x4);
    memcpy(p, &h, sizeof h);
}

#endif /* ROIPOOL_VECTOR_EXT */

/* ---- backward (backward.inc.h; round1, store_ct as ops.h lists them) ---- */
#define roipool_base_f16_round1 roipool_round_half
#define roipool_base_bf16_round1 roipool_round_bf16_sum

#if ROIPOOL_VECTOR_EXT
#define roipool_base_f16_store_ct roipool_base_f16_store
static inline void roipool_base_bf16_store_ct(roipool_bf16_t *p, roipool_base_f32_vt v)
{
    const roipool_base_u32x4 u = (roipool_base_u32x4)v;
    const roipool_base_u32x4 nan = (roipool_base_u32x4)((u & 0x7fffffffu) > 0x7f800000u);
    const roipool_base_u32x4 q = (u & 0x80000000u) | 0x7fc00000u;
    roipool_base_bf16_store(p, (roipool_base_f32_vt)((q & nan) | (u & ~nan)));
}
#endif /* ROIPOOL_VECTOR_EXT */
#endif /* ROIPOOL_SIMD_OPS_BASE_H */
