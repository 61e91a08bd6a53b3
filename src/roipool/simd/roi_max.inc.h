/* The ROI max kernel, written once as plain C in the names of template.h
 * (RP_FN, RP_V, ...). kernels.h includes it once per (instruction set,
 * element type); it defines roipool_bin_max_<type>_<isa> and
 * roipool_roi_max_<type>_<isa>, using the ops of ops.h.
 *
 * Every path computes the same max with the same strict ">": the first
 * maximum in row-major order wins and NaN never wins, so all paths give
 * bit-identical results.
 */
#if RP_VECTORS
/* One step of a running max over one vector of channels; the argmax lanes
 * only when the caller wants them (a constant: without, the step is one max
 * and the index counter is dead code). */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(step)(RP_V(vt) v, RP_V(it) k,
                                                      RP_V(vt) *best, RP_V(it) *arg,
                                                      const int with_idx)
{
    if (with_idx) {
        const RP_V(mt) m = RP_V(gt)(v, *best);
        *best = RP_V(max)(v, *best);
        *arg = RP_V(sel)(*arg, k, m);
    } else {
        *best = RP_V(max)(v, *best);
    }
}

/* Values to best[c:]; argmax lanes to idx_out[c:] when they are int32, to
 * the value-width scratch idx[c:] otherwise (narrowed by the caller). */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(save)(RP_V(vt) b, RP_V(it) i,
                                                      ptrdiff_t c, RP_T *best,
                                                      int32_t *idx_out, RP_IDX *idx,
                                                      const int with_idx)
{
    RP_IO(store)(best + c, b);
    if (!with_idx)
        return;
    if (sizeof(RP_IDX) == sizeof(int32_t))
        RP_V(istore)(idx_out + c, i);
    else
        RP_V(istore)(idx + c, i);
}

/* Channels [c, c + nv * L) of one bin, nv (4, 2 or 1, a constant) vectors
 * of running maxima in registers for the whole bin; vinit, vnone: init and
 * -1 broadcast. */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(bin_max_vectors)(
    const roipool_block_t blk, ptrdiff_t c, ptrdiff_t hs, ptrdiff_t he, ptrdiff_t ws,
    ptrdiff_t we, RP_V(vt) vinit, RP_V(it) vnone, RP_T *ROIPOOL_RESTRICT best,
    int32_t *ROIPOOL_RESTRICT idx_out, RP_IDX *ROIPOOL_RESTRICT idx, const int with_idx,
    const int nv)
{
    enum { L = RP_V(lanes) };
    const RP_T *ROIPOOL_RESTRICT base = (const RP_T *)blk.base;
    RP_V(vt) b0 = vinit, b1 = vinit, b2 = vinit, b3 = vinit;
    RP_V(it) i0 = vnone, i1 = vnone, i2 = vnone, i3 = vnone;
    ptrdiff_t h, w;
    for (h = hs; h < he; ++h) {
        RP_V(kt) kv = RP_V(kset1)((RP_IDX)(h * blk.W + ws));
        for (w = ws; w < we; ++w, kv = RP_V(kinc)(kv)) {
            const RP_T *p = base + h * blk.row_stride + w * blk.col_stride + c;
            const RP_V(it) k = RP_V(kcast)(kv);
            RP_FN(step)(RP_IO(load)(p), k, &b0, &i0, with_idx);
            if (nv >= 2) RP_FN(step)(RP_IO(load)(p + L), k, &b1, &i1, with_idx);
            if (nv == 4) {
                RP_FN(step)(RP_IO(load)(p + 2 * L), k, &b2, &i2, with_idx);
                RP_FN(step)(RP_IO(load)(p + 3 * L), k, &b3, &i3, with_idx);
            }
        }
    }
    RP_FN(save)(b0, i0, c, best, idx_out, idx, with_idx);
    if (nv >= 2) RP_FN(save)(b1, i1, c + L, best, idx_out, idx, with_idx);
    if (nv == 4) {
        RP_FN(save)(b2, i2, c + 2 * L, best, idx_out, idx, with_idx);
        RP_FN(save)(b3, i3, c + 3 * L, best, idx_out, idx, with_idx);
    }
}
#endif

/* One bin: the max over rows [hs, he) x cols [ws, we) of channels
 * [c, channels), written to best[c:] and, unless idx_out is NULL, to
 * idx_out[c:] (argmax h * W + w, -1 when no value beats init). The values
 * alone take one max per vector instead of compare, max and blend: the
 * default and out= calls want no argmax. init is -FLT_MAX, or -inf for the
 * reduced-precision types (docs/semantics.md, "The rule"). best is in the
 * storage type. idx: scratch of
 * the value width, one lane per channel. The block comes by value: its
 * fields stay in registers across the stores to best and idx_out. */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(bin_max_body)(
    const roipool_block_t blk, ptrdiff_t c, ptrdiff_t hs, ptrdiff_t he, ptrdiff_t ws,
    ptrdiff_t we, RP_CT init, RP_T *ROIPOOL_RESTRICT best, int32_t *ROIPOOL_RESTRICT idx_out,
    RP_IDX *ROIPOOL_RESTRICT idx, const int with_idx)
{
    const ptrdiff_t nc = blk.channels;
#if RP_VECTORS
    enum { L = RP_V(lanes) };
    const ptrdiff_t c_first = c;
    const RP_V(vt) vinit = RP_V(set1)(init);
    const RP_V(it) vnone = RP_V(kcast)(RP_V(kset1)(-1));
    ptrdiff_t j;
    /* Four vectors of channels at a time stay in registers for the whole
     * bin, then two (two chains beat one), then one at a time. */
    for (; c + 4 * L <= nc; c += 4 * L)
        RP_FN(bin_max_vectors)(blk, c, hs, he, ws, we, vinit, vnone, best, idx_out, idx,
                               with_idx, 4);
    if (c + 2 * L <= nc) {
        RP_FN(bin_max_vectors)(blk, c, hs, he, ws, we, vinit, vnone, best, idx_out, idx,
                               with_idx, 2);
        c += 2 * L;
    }
    for (; c + L <= nc; c += L)
        RP_FN(bin_max_vectors)(blk, c, hs, he, ws, we, vinit, vnone, best, idx_out, idx,
                               with_idx, 1);
    if (with_idx && sizeof(RP_IDX) != sizeof(int32_t))
        for (j = c_first; j < c; ++j) idx_out[j] = (int32_t)idx[j];
#endif
#ifdef RP_NARROWER
    /* fewer than one vector of channels left (a small C or block): the next
     * narrower path, not scalar code */
    if (c < nc)
        RP_FN_OF(bin_max, RP_NARROWER)(blk, c, hs, he, ws, we, init, best, idx_out, idx);
#else
    {
        const RP_T *ROIPOOL_RESTRICT base = (const RP_T *)blk.base;
        const ptrdiff_t row_stride = blk.row_stride, col_stride = blk.col_stride, W = blk.W;
        ptrdiff_t h, w;
        for (; c < nc; ++c) {
            RP_CT b = init;
            RP_IDX i = -1;
            for (h = hs; h < he; ++h)
                for (w = ws; w < we; ++w) {
                    const RP_CT v = RP_TY(_to_ct)(base[h * row_stride + w * col_stride + c]);
                    if (v > b) { b = v; i = (RP_IDX)(h * W + w); }
                }
            best[c] = RP_TY(_from_ct)(b);
            if (with_idx) idx_out[c] = (int32_t)i;
        }
    }
    (void)idx;
#endif
}

RP_ATTR ROIPOOL_ALIGN_LOOPS static void RP_FN(bin_max)(
    const roipool_block_t blk, ptrdiff_t c, ptrdiff_t hs, ptrdiff_t he, ptrdiff_t ws,
    ptrdiff_t we, RP_CT init, RP_T *ROIPOOL_RESTRICT best, int32_t *ROIPOOL_RESTRICT idx_out,
    RP_IDX *ROIPOOL_RESTRICT idx)
{
    if (idx_out != NULL)
        RP_FN(bin_max_body)(blk, c, hs, he, ws, we, init, best, idx_out, idx, 1);
    else
        RP_FN(bin_max_body)(blk, c, hs, he, ws, we, init, best, NULL, idx, 0);
}

#if RP_VECTORS
/* v[q] = max(channels [q * L, (q + 1) * L) of the pixel at p, v[q]), q < nv */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(pixel_max)(const RP_T *p, RP_V(vt) *v,
                                                           const int nv)
{
    int q;
    for (q = 0; q < nv; ++q) v[q] = RP_V(max)(RP_IO(load)(p + q * RP_V(lanes)), v[q]);
}

/* Values only, for the default and out= calls: bins [k0, k1) of one ROI
 * (see roi_max below), channels [c, c + nv * L), the bin loop inlined.
 * Detector bins cover ~6 pixels, so what a bin cost beyond its loads (a
 * call, the channel-count checks, the k / PW split) was most of the kernel. */
RP_ATTR static ROIPOOL_ALWAYS_INLINE void RP_FN(roi_values_group)(
    const roipool_block_t blk, const ptrdiff_t *bounds, ptrdiff_t PH, ptrdiff_t PW,
    ptrdiff_t k0, ptrdiff_t k1, RP_CT init, RP_T *ROIPOOL_RESTRICT res, ptrdiff_t c,
    const int nv)
{
    enum { L = RP_V(lanes) };
    const RP_T *ROIPOOL_RESTRICT base = (const RP_T *)blk.base;
    const ptrdiff_t rs = blk.row_stride, cs = blk.col_stride, nc = blk.channels;
    const ptrdiff_t *he_of = bounds + PH, *ws_of = bounds + 2 * PH, *we_of = ws_of + PW;
    const RP_V(vt) vinit = RP_V(set1)(init), vzero = RP_V(set1)(0);
    ptrdiff_t ph = k0 / PW, pw = k0 - ph * PW, k = k0;
    RP_T *best = res + c;
    while (k < k1) { /* the bins of row ph from pw on, up to k1 */
        const ptrdiff_t nh = he_of[ph] - bounds[ph], down = (nh - 1) * rs;
        const RP_T *const top = base + bounds[ph] * rs + c;
        const ptrdiff_t pw_end = k1 - k < PW - pw ? pw + (k1 - k) : PW;
        for (; pw < pw_end; ++pw, ++k, best += nc) {
            const ptrdiff_t nw = we_of[pw] - ws_of[pw];
            RP_V(vt) v[8];
            int q;
            if (nh <= 0 || nw <= 0) { /* empty bin: 0 */
                for (q = 0; q < nv; ++q) RP_IO(store)(best + q * L, vzero);
            } else {
                /* row-major from the bin's first pixel, which starts the
                 * maxima (max with init, no copies of init); loops end
                 * at pointers, not counts */
                const RP_T *row = top + ws_of[pw] * cs;
                const RP_T *const last_row = row + down;
                const ptrdiff_t span = nw * cs;
                const RP_T *p = row + cs;
                for (q = 0; q < nv; ++q) v[q] = RP_V(max)(RP_IO(load)(row + q * L), vinit);
                for (;;) {
                    for (; p != row + span; p += cs)
                        RP_FN(pixel_max)(p, v, nv);
                    if (row == last_row)
                        break;
                    row += rs;
                    p = row;
                }
                for (q = 0; q < nv; ++q) RP_IO(store)(best + q * L, v[q]);
            }
        }
        if (pw == PW) { pw = 0; ++ph; }
    }
}

/* The values-only groups of channels: 64 channels (a block of
 * _roi_pool.pyx) or 8 vectors at a time, then one group of half that
 * (32-channel blocks); returns the channels done, bin_max takes the rest.
 * Not inlined: the caller's live values (block, init) made GCC spill one
 * of AVX2's eight running maxima to the stack in the pixel loop. */
RP_ATTR ROIPOOL_ALIGN_LOOPS __attribute__((noinline)) static ptrdiff_t RP_FN(roi_values)(
    const roipool_block_t blk, const ptrdiff_t *bounds, ptrdiff_t PH, ptrdiff_t PW,
    ptrdiff_t k0, ptrdiff_t k1, RP_CT init, RP_T *ROIPOOL_RESTRICT res)
{
    enum { L = RP_V(lanes), NV = 64 / L < 8 ? 64 / L : 8 };
    const ptrdiff_t nc = blk.channels;
    ptrdiff_t c;
    for (c = 0; c + NV * L <= nc; c += NV * L)
        RP_FN(roi_values_group)(blk, bounds, PH, PW, k0, k1, init, res, c, NV);
    if (NV >= 2 && c + NV / 2 * L <= nc) {
        RP_FN(roi_values_group)(blk, bounds, PH, PW, k0, k1, init, res, c, NV / 2);
        c += NV / 2 * L;
    }
    return c;
}
#endif

/* Bins [k0, k1) of one ROI: bounds holds its clipped hs[PH], he[PH],
 * ws[PW], we[PW]; bin k goes to res[(k - k0) * channels ...] and ires
 * likewise (ires NULL: values only). One call per ROI instead of one indirect call per bin: most bins
 * of a detector cover a few pixels, where the call cost more than the max. */
RP_ATTR ROIPOOL_ALIGN_LOOPS static void RP_FN(roi_max)(
    const roipool_block_t *blk, const ptrdiff_t *bounds, ptrdiff_t PH, ptrdiff_t PW,
    ptrdiff_t k0, ptrdiff_t k1, RP_CT init, RP_T *ROIPOOL_RESTRICT res,
    int32_t *ROIPOOL_RESTRICT ires, RP_IDX *ROIPOOL_RESTRICT idx)
{
    const roipool_block_t b = *blk;
    const ptrdiff_t nc = b.channels;
    ptrdiff_t k, j, c0 = 0;
#if RP_VECTORS
    if (ires == NULL)
        c0 = RP_FN(roi_values)(b, bounds, PH, PW, k0, k1, init, res);
    if (c0 == nc)
        return;
#endif
    for (k = k0; k < k1; ++k) {
        const ptrdiff_t ph = k / PW, pw = k - ph * PW;
        const ptrdiff_t hs = bounds[ph], he = bounds[PH + ph];
        const ptrdiff_t ws = bounds[2 * PH + pw], we = bounds[2 * PH + PW + pw];
        RP_T *best = res + (k - k0) * nc;
        int32_t *bin_idx = ires == NULL ? NULL : ires + (k - k0) * nc;
        if (he <= hs || we <= ws) { /* empty bin: 0, argmax -1 */
            for (j = c0; j < nc; ++j) best[j] = RP_TY(_from_ct)(0);
            if (bin_idx != NULL)
                for (j = 0; j < nc; ++j) bin_idx[j] = -1;
        } else {
            RP_FN(bin_max)(b, c0, hs, he, ws, we, init, best, bin_idx, idx);
        }
    }
}
