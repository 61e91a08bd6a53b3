/* The backward's float16/bfloat16 helpers, written once and compiled per
 * ISA (backward.h: ROIPOOL_ISA, ROIPOOL_ISA_ATTR, ROIPOOL_VECTORS as for
 * roi_max.inc.h) and half type ROIPOOL_TYPE (f16, bf16). The ops are the
 * ISA's load/store plus, from the ops files' backward blocks, round1 and
 * store_ct. The pyx adds each ROI's grad_out chunk into per-thread float32
 * planes:
 *   widen    n storage elements -> float32 (exact; F16C may quiet a
 *            signaling NaN, as the add that consumes it does anyway);
 *            returns nonzero when one is a NaN
 *   scatter  plane[c, am[c, k]] = round(plane[c, am[c, k]] + g[c, k]) in
 *            ascending (c, k), a NaN plane value winning over a NaN g, as
 *            MXNet's half_t adds; returns nonzero when an am value lies
 *            outside [-1, HW) (it is skipped). g_nan: g may hold a NaN (only
 *            then can the compiler's operand order of the add show)
 *   narrow   n planes' floats -> storage (exact: each is a rounded sum) */
#define ROIPOOL_BW_FN(name) \
    ROIPOOL_CAT(ROIPOOL_CAT(roipool_##name##_, ROIPOOL_TYPE), ROIPOOL_CAT(_, ROIPOOL_ISA))
#define ROIPOOL_BW_OP(op) \
    ROIPOOL_CAT(ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_ISA), _), ROIPOOL_CAT(ROIPOOL_TYPE, _##op))
#define ROIPOOL_BW_F32(op) ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_ISA), _f32_##op)
#define ROIPOOL_BW_T ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_TYPE), _t)

#define ROIPOOL_BW_TO(x) ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_TYPE), x)

ROIPOOL_ISA_ATTR static int ROIPOOL_BW_FN(widen)(const ROIPOOL_BW_T *ROIPOOL_RESTRICT src,
                                                 ptrdiff_t n, float *ROIPOOL_RESTRICT dst)
{
    ptrdiff_t i = 0;
    int nan = 0;
    for (i = 0; i < n; ++i) /* vectorized by the compiler */
        nan |= (src[i] & 0x7fffu) > ROIPOOL_BW_TO(_inf_bits);
    i = 0;
#if ROIPOOL_VECTORS
    for (; i + ROIPOOL_BW_F32(lanes) <= n; i += ROIPOOL_BW_F32(lanes))
        ROIPOOL_BW_F32(store)(dst + i, ROIPOOL_BW_OP(load)(src + i));
#endif
    for (; i < n; ++i) dst[i] = ROIPOOL_BW_TO(_to_ct)(src[i]);
    return nan;
}

/* The scatter for a constant g_nan: without a NaN in g, which operand of
 * an add comes first cannot change its result. */
ROIPOOL_ISA_ATTR static ROIPOOL_ALWAYS_INLINE int ROIPOOL_BW_FN(scatter_nan)(
    float *plane, const float *ROIPOOL_RESTRICT g, const int32_t *ROIPOOL_RESTRICT am,
    ptrdiff_t nc, ptrdiff_t bins, ptrdiff_t HW, const int g_nan)
{
    ptrdiff_t c, k;
    int bad = 0;
    for (c = 0; c < nc; ++c, plane += HW, g += bins, am += bins)
        for (k = 0; k < bins; ++k) {
            const int32_t a = am[k];
            if ((size_t)a < (size_t)HW) /* 0 <= a < HW */
                plane[a] = ROIPOOL_BW_OP(round1)(g_nan ? roipool_add_nan_first(plane[a], g[k])
                                                       : plane[a] + g[k]);
            else
                bad |= a != -1;
        }
    return bad;
}

ROIPOOL_ISA_ATTR static int ROIPOOL_BW_FN(scatter)(float *plane, const float *g, const int32_t *am,
                                                   ptrdiff_t nc, ptrdiff_t bins, ptrdiff_t HW,
                                                   int g_nan)
{
    if (g_nan) return ROIPOOL_BW_FN(scatter_nan)(plane, g, am, nc, bins, HW, 1);
    return ROIPOOL_BW_FN(scatter_nan)(plane, g, am, nc, bins, HW, 0);
}

ROIPOOL_ISA_ATTR static void ROIPOOL_BW_FN(narrow)(const float *ROIPOOL_RESTRICT src, ptrdiff_t n,
                                                   ROIPOOL_BW_T *ROIPOOL_RESTRICT dst)
{
    ptrdiff_t i = 0;
#if ROIPOOL_VECTORS
    for (; i + ROIPOOL_BW_F32(lanes) <= n; i += ROIPOOL_BW_F32(lanes))
        ROIPOOL_BW_OP(store_ct)(dst + i, ROIPOOL_BW_F32(load)(src + i));
#endif
    for (; i < n; ++i) dst[i] = ROIPOOL_BW_TO(_from_ct)(src[i]);
}

#undef ROIPOOL_BW_TO
#undef ROIPOOL_BW_T
#undef ROIPOOL_BW_F32
#undef ROIPOOL_BW_OP
#undef ROIPOOL_BW_FN
