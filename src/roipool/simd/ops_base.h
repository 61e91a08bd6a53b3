/* Operation table of the baseline path: 16-byte GCC/clang vector extensions
 * (SSE2 on x86-64, NEON on arm64), plain C that every CPU of the target
 * runs. Names: roipool_base_<type>_<op>; see roi_max.inc.h for the ops.
 * C has no vector "?:", so max and select are written with masks. */
#ifndef ROIPOOL_SIMD_OPS_BASE_H
#define ROIPOOL_SIMD_OPS_BASE_H

#include "common.h"

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

#endif /* ROIPOOL_VECTOR_EXT */
#endif /* ROIPOOL_SIMD_OPS_BASE_H */
