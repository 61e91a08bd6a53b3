/* The operations an ISA's table provides (ops_<isa>.h), as code: each list
 * below is X(table, op, result type, arguments), and ROIPOOL_CHECK_OPS(isa)
 * (kernels.h, once per ISA) asserts at compile time that every op exists and
 * yields its type. A missing or mistyped op stops the build naming it.
 * Adding an op: a line in the list, then one definition per ops_<isa>.h.
 *
 * Names: roipool_<isa>_<type>_<op>. Lane tables (f32, f64), on vectors of
 * `lanes` channels:
 *   vt, it, mt, kt   types: values, argmax lanes, compare mask, index counter
 *   lanes            channels per vector (lanes * element size = sizeof(vt))
 *   load, store      unaligned load/store of `lanes` elements; istore: the
 *                    argmax lanes
 *   set1, kset1      broadcast a value / an index; kinc: index + 1
 *   kcast            counter -> argmax lanes
 *   gt(a, b)         a > b, ordered (false when either is NaN)
 *   max(v, b)        exactly "v > b ? v : b"
 *   sel(i, k, m)     m ? k : i per lane
 * Half types (f16, bf16) compute in the f32 table (ROIPOOL_LANES_<type>,
 * common.h) and bring their own:
 *   load, store      `lanes` storage elements <-> one f32 vector, exact
 *   round1           one sum of two storage values, rounded to the type (its
 *                    NaNs quiet with the low payload bits zero, see fp16.h)
 *   store_ct         store a vector of storage-exact floats, NaNs as
 *                    roipool_<type>_from_ct makes them
 * (round1 and store_ct: the backward, only for ISAs that build it.) */
#ifndef ROIPOOL_SIMD_OPS_H
#define ROIPOOL_SIMD_OPS_H

#include "common.h"
#include "ops_base.h"
#include "ops_avx2.h"
#include "ops_avx512.h"
#include "ops_neon.h"

/* a value of the table's type `t` (never evaluated) */
#define ROIPOOL_OPS_VAL_(T, t) (*(T##_##t *)0)

#define ROIPOOL_LANE_OPS(X, T, E, I)                                                       \
    X(T, load, T##_vt, ((const E *)0))                                                      \
    X(T, store, void, ((E *)0, ROIPOOL_OPS_VAL_(T, vt)))                                    \
    X(T, istore, void, ((void *)0, ROIPOOL_OPS_VAL_(T, it)))                                \
    X(T, set1, T##_vt, ((E)0))                                                              \
    X(T, kset1, T##_kt, ((I)0))                                                             \
    X(T, kinc, T##_kt, (ROIPOOL_OPS_VAL_(T, kt)))                                           \
    X(T, kcast, T##_it, (ROIPOOL_OPS_VAL_(T, kt)))                                          \
    X(T, gt, T##_mt, (ROIPOOL_OPS_VAL_(T, vt), ROIPOOL_OPS_VAL_(T, vt)))                    \
    X(T, max, T##_vt, (ROIPOOL_OPS_VAL_(T, vt), ROIPOOL_OPS_VAL_(T, vt)))                   \
    X(T, sel, T##_it,                                                                       \
      (ROIPOOL_OPS_VAL_(T, it), ROIPOOL_OPS_VAL_(T, it), ROIPOOL_OPS_VAL_(T, mt)))

/* T: the half type's ops, F: the f32 table it computes in */
#define ROIPOOL_HALF_OPS(X, T, F)                                                          \
    X(T, load, F##_vt, ((const uint16_t *)0))                                               \
    X(T, store, void, ((uint16_t *)0, ROIPOOL_OPS_VAL_(F, vt)))

#define ROIPOOL_BACKWARD_OPS(X, T, F)                                                      \
    X(T, round1, float, (0.0f))                                                             \
    X(T, store_ct, void, ((uint16_t *)0, ROIPOOL_OPS_VAL_(F, vt)))

#if defined(__GNUC__) || defined(__clang__)
#define ROIPOOL_OPS_EXPECT_(T, op, want, args)                                             \
    _Static_assert(__builtin_types_compatible_p(__typeof__(T##_##op args), want),           \
                   #T "_" #op ": missing, or not the type ops.h lists");
#define ROIPOOL_OPS_LANES_(T, E)                                                           \
    _Static_assert(T##_lanes * sizeof(E) == sizeof(T##_vt), #T "_lanes: not sizeof(vt)");
#define ROIPOOL_OPS_UNUSED_ __attribute__((unused))
#else
#define ROIPOOL_OPS_EXPECT_(T, op, want, args)
#define ROIPOOL_OPS_LANES_(T, E)
#define ROIPOOL_OPS_UNUSED_
#endif

/* Every op of the vector kernels (roi_max.inc.h) for one ISA (a macro
 * such as RP_ISA is expanded first). The asserts sit in a function that is
 * never called (never emitted): some NEON intrinsics are statement
 * expressions, which clang accepts only inside a function. */
#define ROIPOOL_CHECK_OPS(isa) ROIPOOL_CHECK_OPS_(isa)
#define ROIPOOL_CHECK_OPS_(isa)                                                            \
    static inline ROIPOOL_OPS_UNUSED_ void roipool_check_ops_##isa(void)                   \
    {                                                                                      \
        ROIPOOL_OPS_LANES_(roipool_##isa##_f32, float)                                      \
        ROIPOOL_OPS_LANES_(roipool_##isa##_f64, double)                                     \
        ROIPOOL_LANE_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f32, float, int32_t)          \
        ROIPOOL_LANE_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f64, double, int64_t)         \
        ROIPOOL_HALF_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f16, roipool_##isa##_f32)     \
        ROIPOOL_HALF_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_bf16, roipool_##isa##_f32)    \
    }

/* ... and of the backward's vector loops (backward.inc.h). */
#define ROIPOOL_CHECK_BACKWARD_OPS(isa) ROIPOOL_CHECK_BACKWARD_OPS_(isa)
#define ROIPOOL_CHECK_BACKWARD_OPS_(isa)                                                   \
    static inline ROIPOOL_OPS_UNUSED_ void roipool_check_backward_ops_##isa(void)          \
    {                                                                                      \
        ROIPOOL_BACKWARD_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_f16, roipool_##isa##_f32) \
        ROIPOOL_BACKWARD_OPS(ROIPOOL_OPS_EXPECT_, roipool_##isa##_bf16, roipool_##isa##_f32) \
    }

#endif /* ROIPOOL_SIMD_OPS_H */
