/* The RoIAlign kernels, written once as plain C (docs/semantics.md,
 * RoIAlign). roi_align.h includes this file once per (instruction set,
 * element type) with the macros roi_max.inc.h takes (ROIPOOL_ISA,
 * ROIPOOL_TYPE, ROIPOOL_ISA_ATTR, ROIPOOL_VECTORS, ROIPOOL_NARROWER), and it
 * defines roipool_align_fwd_<type>_<isa> and roipool_align_bwd_<type>_<isa>.
 *
 * A ROI comes as its sample table (ops_align.h: per bin, per_bin samples
 * in torchvision's (iy, ix) order, each 4 pixel indices and 4 weights),
 * computed once per ROI by _roi_align.pxi and shared by every channel; the
 * channels are the SIMD lanes, read from a pixel-major block (common.h).
 * Per channel the operations are torchvision's, in its order, each rounded
 * to float16 for float16 (`round`; bfloat16 computes in float32 and rounds
 * the result, `round_out`):
 *   avg   acc = 0; per sample acc += ((w1*v1 + w2*v2) + w3*v3) + w4*v4;
 *         out = acc / count
 *   max   (ONNX Runtime) per sample m = max(max(max(w1*v1, w2*v2), w3*v3),
 *         w4*v4); out = the first m, then max(out, m), with std::max's
 *         "a < b ? b : a"; 0 for a bin without samples
 *   bwd   per sample with pos[0] >= 0, per corner i:
 *         grad[pos_i] += (g * w_i) / count, in the table's order
 * The vector op max(v, b) is "v > b ? v : b", so std::max(a, b) is
 * max(b, a). */
#define RP_TYPE_(suffix) ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_TYPE), suffix)
#define RP_T RP_TYPE_(_t)
#define RP_CT RP_TYPE_(_ct)
#define RP_SAMPLE RP_TYPE_(_sample_t)
#define RP_TO_CT RP_TYPE_(_to_ct)
#define RP_FROM_CT RP_TYPE_(_from_ct)
#define RP_RS RP_TYPE_(_round_ct)
#define RP_RS_OUT RP_TYPE_(_round_out_ct)
#define RP_SUFFIX ROIPOOL_CAT(ROIPOOL_CAT(_, ROIPOOL_TYPE), ROIPOOL_CAT(_, ROIPOOL_ISA))
#define RP_FN(name) ROIPOOL_CAT(roipool_##name, RP_SUFFIX)
#define RP_ISA_OPS_(type) ROIPOOL_CAT(ROIPOOL_CAT(roipool_, ROIPOOL_ISA), ROIPOOL_CAT(_, type))
#define RP_V(op) ROIPOOL_CAT(RP_ISA_OPS_(ROIPOOL_CAT(ROIPOOL_LANES_, ROIPOOL_TYPE)), _##op)
#define RP_IO(op) ROIPOOL_CAT(RP_ISA_OPS_(ROIPOOL_TYPE), _##op)
#define RP_R(v) RP_IO(round)(v)
#ifdef ROIPOOL_NARROWER
#define RP_NARROWER(name) ROIPOOL_CAT(ROIPOOL_CAT(roipool_##name##_, ROIPOOL_TYPE), \
                                      ROIPOOL_CAT(_, ROIPOOL_NARROWER))
#endif

#if ROIPOOL_VECTORS
/* Bins [0, nbins) of one ROI, channels [c, c + nv * L) of the block. */
ROIPOOL_ISA_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(align_fwd_group)(
    const RP_T *ROIPOOL_RESTRICT base, ptrdiff_t cs, const RP_SAMPLE *smp, ptrdiff_t per_bin,
    ptrdiff_t nbins, RP_CT count, RP_CT rcount, const int max_mode, RP_T *ROIPOOL_RESTRICT res,
    ptrdiff_t nc, ptrdiff_t c, const int nv)
{
    enum { L = RP_V(lanes) };
    const RP_V(vt) vcount = RP_V(set1)(count), vr = RP_V(set1)(rcount), vzero = RP_V(set1)(0);
    const RP_T *const b = base + c;
    ptrdiff_t k, s;
    int q;
    for (k = 0; k < nbins; ++k, smp += per_bin) {
        RP_V(vt) acc[4];
        for (q = 0; q < nv; ++q) acc[q] = vzero;
        for (s = 0; s < per_bin; ++s) {
            const RP_SAMPLE *sp = smp + s;
            const RP_T *p1 = b + sp->pos[0] * cs, *p2 = b + sp->pos[1] * cs;
            const RP_T *p3 = b + sp->pos[2] * cs, *p4 = b + sp->pos[3] * cs;
            const RP_V(vt) w1 = RP_V(set1)(sp->w[0]), w2 = RP_V(set1)(sp->w[1]);
            const RP_V(vt) w3 = RP_V(set1)(sp->w[2]), w4 = RP_V(set1)(sp->w[3]);
            for (q = 0; q < nv; ++q) {
                const RP_V(vt) t1 = RP_R(RP_V(mul)(w1, RP_IO(load)(p1 + q * L)));
                const RP_V(vt) t2 = RP_R(RP_V(mul)(w2, RP_IO(load)(p2 + q * L)));
                const RP_V(vt) t3 = RP_R(RP_V(mul)(w3, RP_IO(load)(p3 + q * L)));
                const RP_V(vt) t4 = RP_R(RP_V(mul)(w4, RP_IO(load)(p4 + q * L)));
                if (max_mode) {
                    const RP_V(vt) m = RP_V(max)(t4, RP_V(max)(t3, RP_V(max)(t2, t1)));
                    acc[q] = s == 0 ? m : RP_V(max)(m, acc[q]);
                } else {
                    const RP_V(vt) t = RP_R(RP_V(add)(RP_R(RP_V(add)(RP_R(RP_V(add)(t1, t2)), t3)), t4));
                    acc[q] = RP_R(RP_V(add)(acc[q], t));
                }
            }
        }
        for (q = 0; q < nv; ++q)
            RP_IO(store)(res + k * nc + c + q * L,
                         RP_IO(round_out)(max_mode ? acc[q]
                                          : RP_R(rcount != 0 ? RP_V(mul)(acc[q], vr)
                                                             : RP_V(div)(acc[q], vcount))));
    }
}

/* Channels [c, ...) by 4, 2 and 1 vectors, for a constant mode; returns
 * the channels done. */
ROIPOOL_ISA_ATTR static ROIPOOL_ALWAYS_INLINE ptrdiff_t RP_FN(align_fwd_groups)(
    const RP_T *base, ptrdiff_t cs, ptrdiff_t nc, ptrdiff_t c, const RP_SAMPLE *smp,
    ptrdiff_t per_bin, ptrdiff_t nbins, RP_CT count, RP_CT rcount, const int max_mode, RP_T *res)
{
    enum { L = RP_V(lanes) };
    for (; c + 4 * L <= nc; c += 4 * L)
        RP_FN(align_fwd_group)(base, cs, smp, per_bin, nbins, count, rcount, max_mode, res, nc, c, 4);
    if (c + 2 * L <= nc) {
        RP_FN(align_fwd_group)(base, cs, smp, per_bin, nbins, count, rcount, max_mode, res, nc, c, 2);
        c += 2 * L;
    }
    for (; c + L <= nc; c += L)
        RP_FN(align_fwd_group)(base, cs, smp, per_bin, nbins, count, rcount, max_mode, res, nc, c, 1);
    return c;
}
#endif

/* Bins [0, nbins) of one ROI into res[k * nc + c] (storage type), channels
 * [c0, nc) of the block at base (pixel p of channel j at base[p * cs + j]).
 * rcount: as for align_bwd below (the divide was most of a small bin). */
ROIPOOL_ISA_ATTR ROIPOOL_ALIGN_LOOPS static void RP_FN(align_fwd)(
    const void *base_, ptrdiff_t cs, ptrdiff_t nc, ptrdiff_t c0, const void *table,
    ptrdiff_t per_bin, ptrdiff_t nbins, RP_CT count, RP_CT rcount, int max_mode,
    RP_T *ROIPOOL_RESTRICT res)
{
    const RP_T *base = (const RP_T *)base_;
    const RP_SAMPLE *smp = (const RP_SAMPLE *)table;
    ptrdiff_t c = c0;
#if ROIPOOL_VECTORS
    if (max_mode)
        c = RP_FN(align_fwd_groups)(base, cs, nc, c, smp, per_bin, nbins, count, rcount, 1, res);
    else
        c = RP_FN(align_fwd_groups)(base, cs, nc, c, smp, per_bin, nbins, count, rcount, 0, res);
#endif
#ifdef ROIPOOL_NARROWER
    if (c < nc)
        RP_NARROWER(align_fwd)(base_, cs, nc, c, table, per_bin, nbins, count, rcount, max_mode,
                               res);
#else
    for (; c < nc; ++c) {
        const RP_T *b = base + c;
        const RP_SAMPLE *sp = smp;
        ptrdiff_t k, s;
        for (k = 0; k < nbins; ++k) {
            RP_CT acc = 0;
            for (s = 0; s < per_bin; ++s, ++sp) {
                const RP_CT t1 = RP_RS(sp->w[0] * RP_TO_CT(b[sp->pos[0] * cs]));
                const RP_CT t2 = RP_RS(sp->w[1] * RP_TO_CT(b[sp->pos[1] * cs]));
                const RP_CT t3 = RP_RS(sp->w[2] * RP_TO_CT(b[sp->pos[2] * cs]));
                const RP_CT t4 = RP_RS(sp->w[3] * RP_TO_CT(b[sp->pos[3] * cs]));
                if (max_mode) {
                    RP_CT m = t1 < t2 ? t2 : t1;
                    m = m < t3 ? t3 : m;
                    m = m < t4 ? t4 : m;
                    acc = s == 0 ? m : (acc < m ? m : acc);
                } else {
                    acc = RP_RS(acc + RP_RS(RP_RS(RP_RS(t1 + t2) + t3) + t4));
                }
            }
            res[k * nc + c] = RP_FROM_CT(RP_RS_OUT(max_mode ? acc : RP_RS(acc / count)));
            (void)rcount;
        }
    }
#endif
}

/* One ROI's gradient into the pixel-major planes acc (acc[p * nc + j],
 * compute type): g holds its grad_out as g[k * nc + j], channels [c0, nc).
 * rcount is 1 / count when that is exact (count a power of two), else 0:
 * then x / count and x * rcount are the same rounding of the same value. */
ROIPOOL_ISA_ATTR ROIPOOL_ALIGN_LOOPS static void RP_FN(align_bwd)(
    RP_CT *ROIPOOL_RESTRICT acc, ptrdiff_t nc, ptrdiff_t c0, const RP_CT *ROIPOOL_RESTRICT g,
    const void *table, ptrdiff_t per_bin, ptrdiff_t nbins, RP_CT count, RP_CT rcount)
{
    const RP_SAMPLE *smp = (const RP_SAMPLE *)table;
    ptrdiff_t c = c0, k, s;
    int i;
#if ROIPOOL_VECTORS
    enum { L = RP_V(lanes) };
    const RP_V(vt) vcount = RP_V(set1)(count), vr = RP_V(set1)(rcount);
    if (c + L <= nc) {
        const RP_SAMPLE *sp = smp;
        for (k = 0; k < nbins; ++k)
            for (s = 0; s < per_bin; ++s, ++sp) {
                ptrdiff_t cv;
                if (sp->pos[0] < 0) continue;
                for (cv = c; cv + L <= nc; cv += L) {
                    const RP_V(vt) gv = RP_V(load)(g + k * nc + cv);
                    for (i = 0; i < 4; ++i) {
                        const RP_V(vt) gw = RP_R(RP_V(mul)(gv, RP_V(set1)(sp->w[i])));
                        const RP_V(vt) gi = RP_R(rcount != 0 ? RP_V(mul)(gw, vr)
                                                              : RP_V(div)(gw, vcount));
                        RP_CT *a = acc + sp->pos[i] * nc + cv;
                        RP_V(store)(a, RP_R(RP_V(add)(RP_V(load)(a), gi)));
                    }
                }
            }
        c += (nc - c) / L * L;
    }
#endif
#ifdef ROIPOOL_NARROWER
    if (c < nc)
        RP_NARROWER(align_bwd)(acc, nc, c, g, table, per_bin, nbins, count, rcount);
#else
    for (; c < nc; ++c) {
        const RP_SAMPLE *sp = smp;
        for (k = 0; k < nbins; ++k)
            for (s = 0; s < per_bin; ++s, ++sp) {
                if (sp->pos[0] < 0) continue;
                for (i = 0; i < 4; ++i) {
                    const RP_CT gw = RP_RS(g[k * nc + c] * sp->w[i]);
                    RP_CT *a = acc + sp->pos[i] * nc + c;
                    *a = RP_RS(*a + RP_RS(gw / count));
                }
            }
    }
#endif
}

#undef RP_TYPE_
#undef RP_T
#undef RP_CT
#undef RP_SAMPLE
#undef RP_TO_CT
#undef RP_FROM_CT
#undef RP_RS
#undef RP_RS_OUT
#undef RP_SUFFIX
#undef RP_FN
#undef RP_ISA_OPS_
#undef RP_V
#undef RP_IO
#undef RP_R
#ifdef RP_NARROWER
#undef RP_NARROWER
#endif
