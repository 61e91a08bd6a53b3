/* The names a kernel body (roi_max.inc.h, backward.inc.h) is written in,
 * all under the prefix RP_. kernels.h sets the parameters and includes the
 * bodies once per (ISA, element type); everything else here is derived from
 * them when a body uses it, so it is defined once and never redefined.
 *
 * Parameters (kernels.h):
 *   RP_ISA       base, avx2, avx512, neon: the operation table of ops_<isa>.h
 *   RP_TYPE      f32, f64, f16, bf16: the element type (common.h)
 *   RP_ATTR      the functions' target attribute (empty for base and neon)
 *   RP_VECTORS   1 when the ISA has an operation table (0: scalar loops only)
 *   RP_NARROWER  optional: the ISA whose bin max takes the channels left
 *                when fewer than one vector remain (else a scalar loop)
 *
 * Names:
 *   RP_T, RP_CT, RP_IDX  storage, compute and argmax-lane types of RP_TYPE
 *   RP_TY(_suffix)       roipool_<type>_suffix: _to_ct, _from_ct, _inf_bits
 *   RP_FN(name)          the function roipool_<name>_<type>_<isa>
 *   RP_FN_OF(name, isa)  the same function of another ISA (RP_NARROWER)
 *   RP_V(op)             a vector op or type of the lanes RP_TYPE computes in
 *                        (roipool_<isa>_<lanes>_<op>; lanes: ROIPOOL_LANES_<type>)
 *   RP_IO(op)            an op of RP_TYPE itself (roipool_<isa>_<type>_<op>):
 *                        load, store and the backward's round1, store_ct
 *   RP_F32(op)           an op of the float32 table (the backward's planes)
 * The ops each table provides are listed, and checked, in ops.h. */
#ifndef ROIPOOL_SIMD_TEMPLATE_H
#define ROIPOOL_SIMD_TEMPLATE_H

#include "common.h"

#define RP_CAT3(a, b, c) ROIPOOL_CAT(ROIPOOL_CAT(a, b), c)
#define RP_TY(suffix) RP_CAT3(roipool_, RP_TYPE, suffix)
#define RP_T RP_TY(_t)
#define RP_CT RP_TY(_ct)
#define RP_IDX RP_TY(_idx_t)
#define RP_FN_OF(name, isa) RP_CAT3(roipool_##name##_, RP_TYPE, ROIPOOL_CAT(_, isa))
#define RP_FN(name) RP_FN_OF(name, RP_ISA)
#define RP_OPS_(type, op) RP_CAT3(RP_CAT3(roipool_, RP_ISA, _), type, _##op)
#define RP_V(op) RP_OPS_(ROIPOOL_CAT(ROIPOOL_LANES_, RP_TYPE), op)
#define RP_IO(op) RP_OPS_(RP_TYPE, op)
#define RP_F32(op) RP_OPS_(f32, op)

#endif /* ROIPOOL_SIMD_TEMPLATE_H */
