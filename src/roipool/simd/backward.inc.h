/* The backward's float16/bfloat16 helpers, written once in the names of
 * template.h and compiled by kernels.h per ISA and half type (f16, bf16):
 * roipool_{widen,scatter,narrow}_<type>_<isa>. The ops are the ISA's
 * load/store plus round1 and store_ct (ops.h). The pyx adds each ROI's grad_out chunk into per-thread float32
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
RP_ATTR static int RP_FN(widen)(const RP_T *ROIPOOL_RESTRICT src,
                                ptrdiff_t n, float *ROIPOOL_RESTRICT dst)
{
    ptrdiff_t i = 0;
    int nan = 0;
    for (i = 0; i < n; ++i) /* vectorized by the compiler */
        nan |= (src[i] & 0x7fffu) > RP_TY(_inf_bits);
    i = 0;
#if RP_VECTORS
    for (; i + RP_F32(lanes) <= n; i += RP_F32(lanes))
        RP_F32(store)(dst + i, RP_IO(load)(src + i));
#endif
    for (; i < n; ++i) dst[i] = RP_TY(_to_ct)(src[i]);
    return nan;
}

/* The scatter for a constant g_nan: without a NaN in g, which operand of
 * an add comes first cannot change its result. */
RP_ATTR static ROIPOOL_ALWAYS_INLINE int RP_FN(scatter_nan)(
    float *plane, const float *ROIPOOL_RESTRICT g, const int32_t *ROIPOOL_RESTRICT am,
    ptrdiff_t nc, ptrdiff_t bins, ptrdiff_t HW, const int g_nan)
{
    ptrdiff_t c, k;
    int bad = 0;
    for (c = 0; c < nc; ++c, plane += HW, g += bins, am += bins)
        for (k = 0; k < bins; ++k) {
            const int32_t a = am[k];
            if ((size_t)a < (size_t)HW) /* 0 <= a < HW */
                plane[a] = RP_IO(round1)(g_nan ? roipool_add_nan_first(plane[a], g[k])
                                                       : plane[a] + g[k]);
            else
                bad |= a != -1;
        }
    return bad;
}

RP_ATTR static int RP_FN(scatter)(float *plane, const float *g, const int32_t *am,
                                  ptrdiff_t nc, ptrdiff_t bins, ptrdiff_t HW,
                                  int g_nan)
{
    if (g_nan) return RP_FN(scatter_nan)(plane, g, am, nc, bins, HW, 1);
    return RP_FN(scatter_nan)(plane, g, am, nc, bins, HW, 0);
}

RP_ATTR static void RP_FN(narrow)(const float *ROIPOOL_RESTRICT src, ptrdiff_t n,
                                  RP_T *ROIPOOL_RESTRICT dst)
{
    ptrdiff_t i = 0;
#if RP_VECTORS
    for (; i + RP_F32(lanes) <= n; i += RP_F32(lanes))
        RP_IO(store_ct)(dst + i, RP_F32(load)(src + i));
#endif
    for (; i < n; ++i) dst[i] = RP_TY(_from_ct)(src[i]);
}
