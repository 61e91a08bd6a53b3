# RoIAlign (docs/semantics.md, "RoIAlign"), included by _roi_pool.pyx after
# _plan.pxi: its rule (one sample table per ROI, computed once per call and
# shared by every channel), its task function on the shared plan, task
# split, gather and stores (_plan.pxi), and its backward. The kernels are
# simd/roi_align.inc.h, entries of the active ISA table.

# How ROI rows become samples: what one call gives _align_prepare.
ctypedef struct AlignSpec:
    double scale          # spatial_scale (float32-rounded unless compat="torchvision")
    bint aligned          # half-pixel offset, no minimum ROI size
    Py_ssize_t sampling   # samples per bin side; <= 0: adaptive
    int rmode             # Rounding of the geometry: float16's, or none (bfloat16
                          # computes in float32, docs/semantics.md)
    Py_ssize_t N, H, W, PH, PW


# The sample tables of one call, per ROI r: per_bin[r] samples per bin
# (PH * PW bins), count[r] the divisor, its table at tables + at[r] samples.
ctypedef struct AlignRois:
    Py_ssize_t *per_bin
    Py_ssize_t *at
    double *count
    char *tables
    Py_ssize_t sample_bytes
    bint max_mode
    # per ROI, the pixels its samples read: rows box[5r] .. box[5r + 1],
    # columns box[5r + 2] .. box[5r + 3] (none when the first exceeds the
    # second), box[5r + 4] whether an out-of-map sample reads pixel 0 (then
    # the rows start at 0)
    int32_t *box
    # per ROI: start_h, start_w, bin_h, bin_w, then per ROI the grid (gh, gw),
    # in the compute type (_align_sizes), until the tables are filled
    void *geo
    # the tables' samples (at[R], kept after they are freed), and whether
    # they were what could not be allocated
    Py_ssize_t n_samples
    bint tables_failed


# More samples than this in one call's tables cannot be allocated (the bytes
# would not fit 63 bits); the count saturates there.
cdef Py_ssize_t _MAX_SAMPLES = (<Py_ssize_t>1) << 56


cdef void _raise_if_tables_failed(const AlignRois *a) except *:
    """The MemoryError naming the sample tables' size, when they were what
    could not be allocated."""
    if a.tables_failed:
        from roipool._status import sample_table_error
        raise sample_table_error(a.n_samples, a.sample_bytes)


cdef inline void _align_spec(AlignSpec *rule, double scale, bint aligned, Py_ssize_t sampling,
                             int rmode) noexcept nogil:
    rule.scale, rule.aligned, rule.sampling = scale, aligned, sampling
    rule.rmode = RMODE_HALF if rmode == RMODE_HALF else RMODE_NONE


cdef inline void _free_align(AlignRois *a) noexcept nogil:
    free(a.per_bin); free(a.at); free(a.count); free(a.tables); free(a.box); free(a.geo)
    a.per_bin = a.at = NULL
    a.count = NULL
    a.tables = NULL
    a.box = NULL
    a.geo = NULL


cdef inline bint _align_axis(floating v, Py_ssize_t size, int rmode, int32_t *lo, int32_t *hi,
                             floating *l, floating *h) noexcept nogil:
    """One coordinate of a sample: its two pixel rows (or columns) and their
    weights h (low) and l (high); False when outside [-1, size]."""
    cdef Py_ssize_t low
    if not (v >= -1.0 and v <= <floating>size):  # NaN too
        return False
    if v <= 0:
        v = 0
    low = <Py_ssize_t>v
    if low >= size - 1:
        low = size - 1
        hi[0] = <int32_t>low
        v = _as_storage(<floating>low, rmode)
    else:
        hi[0] = <int32_t>(low + 1)
    lo[0] = <int32_t>low
    l[0] = _as_storage(v - _as_storage(<floating>low, rmode), rmode)
    h[0] = _as_storage(<floating>1 - l[0], rmode)
    return True


cdef Py_ssize_t _align_sizes(const floating[:, ::1] rois, const AlignSpec *rule,
                             AlignRois *a, floating *geo, Py_ssize_t n_rows) noexcept nogil:
    """Per ROI of the first n_rows: start, bin size (geo[r * 4 ...]: start_h,
    start_w, bin_h, bin_w), samples per bin and the count; OK or a bad row
    (sizes that are not finite, or 2**31 samples per box: torchvision's C int
    overflows)."""
    cdef Py_ssize_t R = rois.shape[0], r, gh, gw, total = 0
    cdef int rmode = rule.rmode
    cdef floating scale = _as_storage(<floating>rule.scale, rmode)
    cdef floating offset = <floating>(0.5 if rule.aligned else 0.0)
    cdef floating pooled_h = _as_storage(<floating>rule.PH, rmode)
    cdef floating pooled_w = _as_storage(<floating>rule.PW, rmode)
    cdef floating sw, sh, ew, eh, rw, rh, bh, bw
    cdef double ch, cw
    for r in range(n_rows):
        sw = _as_storage(_as_storage(rois[r, 1] * scale, rmode) - offset, rmode)
        sh = _as_storage(_as_storage(rois[r, 2] * scale, rmode) - offset, rmode)
        ew = _as_storage(_as_storage(rois[r, 3] * scale, rmode) - offset, rmode)
        eh = _as_storage(_as_storage(rois[r, 4] * scale, rmode) - offset, rmode)
        rw = _as_storage(ew - sw, rmode)
        rh = _as_storage(eh - sh, rmode)
        if not rule.aligned:  # std::max(size, 1)
            rw = 1 if rw < 1 else rw
            rh = 1 if rh < 1 else rh
        bh = _as_storage(rh / pooled_h, rmode)
        bw = _as_storage(rw / pooled_w, rmode)
        if not (isfinite(sw) and isfinite(sh) and isfinite(ew) and isfinite(eh)
                and isfinite(rw) and isfinite(rh)):
            return r * ROW_CODES + BAD_SIZE_RANGE
        if rule.sampling > 0:
            gh = gw = rule.sampling
        else:
            # a grid <= 0 on an axis (a flipped aligned ROI): no samples
            ch = max(ceil(<double>bh), 0.0)
            cw = max(ceil(<double>bw), 0.0)
            if ch * cw * <double>(rule.PH * rule.PW) >= 2147483648.0:
                return r * ROW_CODES + BAD_SIZE_RANGE
            gh = <Py_ssize_t>ch if cw > 0 else 0
            gw = <Py_ssize_t>cw if ch > 0 else 0
        if rule.H == 0 or rule.W == 0:  # an empty map: nothing to sample
            gh = gw = 0
        a.per_bin[r] = gh * gw
        a.at[r] = total
        # at most 2**31 samples a box: the sum saturates (no allocation that
        # large can succeed: _align_prepare refuses it)
        total = min(total + gh * gw * rule.PH * rule.PW, _MAX_SAMPLES)
        a.count[r] = _as_storage(<floating>max(gh * gw, 1), rmode)
        geo[4 * r], geo[4 * r + 1], geo[4 * r + 2], geo[4 * r + 3] = sh, sw, bh, bw
        # per-ROI grids, kept for the table fill
        geo[4 * R + 2 * r] = <floating>gh
        geo[4 * R + 2 * r + 1] = <floating>gw
    a.at[R] = a.n_samples = total
    return OK


ctypedef struct AxisSample:
    # one sample coordinate on one axis (_align_axis): its two pixel rows or
    # columns and their weights; valid False outside [-1, size]
    int32_t lo, hi
    double l, h
    bint valid


cdef void _align_axis_table(floating start, floating bin_size, Py_ssize_t n_bins,
                            Py_ssize_t grid, Py_ssize_t size, int rmode,
                            AxisSample *out) noexcept nogil:
    """The coordinates of every (bin, sample) on one axis, in torchvision's
    operations: start + bin * bin_size + (i + 0.5) * bin_size / grid."""
    cdef Py_ssize_t b, i
    cdef floating fg = _as_storage(<floating>grid, rmode), v, l = 0, h = 0
    for b in range(n_bins):
        for i in range(grid):
            v = _as_storage(
                _as_storage(start + _as_storage(_as_storage(<floating>b, rmode) * bin_size, rmode),
                            rmode)
                + _as_storage(_as_storage(_as_storage(<floating>(i + 0.5), rmode) * bin_size,
                                          rmode) / fg, rmode), rmode)
            out.valid = _align_axis(v, size, rmode, &out.lo, &out.hi, &l, &h)
            out.l, out.h = l, h
            out += 1


cdef AxisSample *_align_axes(const floating *geo, Py_ssize_t R, Py_ssize_t r,
                             const AlignSpec *rule, Py_ssize_t *gh, Py_ssize_t *gw) noexcept nogil:
    """ROI r's grid (*gh, *gw) and the coordinates of its samples on each
    axis (_align_axis_table): PH * gh rows, then PW * gw columns, to free();
    NULL when it has no samples or they cannot be allocated."""
    cdef AxisSample *axes
    gh[0], gw[0] = <Py_ssize_t>geo[4 * R + 2 * r], <Py_ssize_t>geo[4 * R + 2 * r + 1]
    if gh[0] * gw[0] == 0:
        return NULL
    axes = <AxisSample *>malloc((rule.PH * gh[0] + rule.PW * gw[0]) * sizeof(AxisSample))
    if axes != NULL:
        _align_axis_table(geo[4 * r], geo[4 * r + 2], rule.PH, gh[0], rule.H, rule.rmode, axes)
        _align_axis_table(geo[4 * r + 1], geo[4 * r + 3], rule.PW, gw[0], rule.W, rule.rmode,
                          axes + rule.PH * gh[0])
    return axes


cdef bint _align_box(const floating *geo, Py_ssize_t R, Py_ssize_t r, const AlignSpec *rule,
                     AlignRois *a) noexcept nogil:
    """ROI r's box (AlignRois.box): every valid row with every valid
    column, and pixel 0 for a sample outside the map (one axis invalid);
    False when out of memory."""
    cdef Py_ssize_t gh, gw, i, n_rows
    cdef int32_t *box = a.box + 5 * r
    cdef const AxisSample *v
    cdef AxisSample *axes = _align_axes(geo, R, r, rule, &gh, &gw)
    box[0], box[1], box[2], box[3], box[4] = <int32_t>rule.H, -1, <int32_t>rule.W, -1, 0
    if axes == NULL:
        return gh * gw == 0
    n_rows = rule.PH * gh
    for i in range(n_rows + rule.PW * gw):
        v = axes + i
        if not v.valid:
            box[4] = 1
        elif i < n_rows:
            box[0], box[1] = min(box[0], v.lo), max(box[1], v.hi)
        else:
            box[2], box[3] = min(box[2], v.lo), max(box[3], v.hi)
    if box[0] > box[1] or box[2] > box[3]:  # no sample inside
        box[0], box[1], box[2], box[3] = <int32_t>rule.H, -1, <int32_t>rule.W, -1
        box[4] = 1
    if box[4]:
        box[0], box[1] = 0, max(box[1], 0)
    free(axes)
    return True


cdef bint _align_fill(const floating *geo, Py_ssize_t R, Py_ssize_t r, const AlignSpec *rule,
                      AlignRois *a, bint backward, Py_ssize_t ring) noexcept nogil:
    """ROI r's samples, in torchvision's order: bins row-major, then iy, ix,
    each axis's coordinates computed once (_align_axes), the weights per
    sample as torchvision forms them (hy * hx, ...). Row h of the map is
    row h % ring of the block the kernel reads (a ring of rows), h with
    ring 0. False when out of memory."""
    cdef int rmode = rule.rmode
    cdef Py_ssize_t W = rule.W, PH = rule.PH, PW = rule.PW, gh, gw, ph, pw, iy, ix, j, y_lo, y_hi
    cdef floating ly, hy, lx, hx
    cdef const AxisSample *ys
    cdef const AxisSample *xs
    cdef char *t = a.tables + a.at[r] * a.sample_bytes
    cdef roipool_f32_sample_t *s32
    cdef roipool_f64_sample_t *s64
    cdef floating w[4]
    cdef int32_t pos[4]
    cdef AxisSample *axes = _align_axes(geo, R, r, rule, &gh, &gw)
    if axes == NULL:
        return gh * gw == 0
    for ph in range(PH):
        for pw in range(PW):
            for iy in range(gh):
                ys = axes + ph * gh + iy
                ly, hy = <floating>ys.l, <floating>ys.h
                y_lo = (ys.lo % ring if ring else ys.lo) * W
                y_hi = (ys.hi % ring if ring else ys.hi) * W
                for ix in range(gw):
                    xs = axes + PH * gh + pw * gw + ix
                    if ys.valid and xs.valid:
                        lx, hx = <floating>xs.l, <floating>xs.h
                        pos[0], pos[1] = <int32_t>(y_lo + xs.lo), <int32_t>(y_lo + xs.hi)
                        pos[2], pos[3] = <int32_t>(y_hi + xs.lo), <int32_t>(y_hi + xs.hi)
                        w[0] = _as_storage(hy * hx, rmode)
                        w[1] = _as_storage(hy * lx, rmode)
                        w[2] = _as_storage(ly * hx, rmode)
                        w[3] = _as_storage(ly * lx, rmode)
                    else:  # outside the map: see roipool_f32_sample_t
                        pos[0] = -1 if backward else 0
                        pos[1] = pos[2] = pos[3] = 0
                        w[0] = w[1] = w[2] = w[3] = 0
                    if floating is double:
                        s64 = <roipool_f64_sample_t *>t
                        for j in range(4):
                            s64.pos[j], s64.w[j] = pos[j], w[j]
                    else:
                        s32 = <roipool_f32_sample_t *>t
                        for j in range(4):
                            s32.pos[j], s32.w[j] = pos[j], w[j]
                    t += a.sample_bytes
    free(axes)
    return True


cdef Py_ssize_t _align_prepare(const floating[:, ::1] rois, const AlignSpec *rule, AlignRois *a,
                               Workspace *ws, bint backward, int n_threads) noexcept nogil:
    """Scan the rows (the shared batch check, finite coordinates, then the
    sizes), group ROIs by image in ws (allocated here, one value per row),
    find every forward ROI's box (in parallel); _align_tables then fills
    the sample tables."""
    cdef Py_ssize_t R = rois.shape[0], r, j, status = OK, sizes, n_ok = R, failed = 0
    cdef floating *geo = <floating *>malloc(max(R, 1) * 6 * sizeof(floating))
    a.geo = geo
    a.per_bin = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    a.at = <Py_ssize_t *>malloc((R + 1) * sizeof(Py_ssize_t))
    a.count = <double *>malloc(max(R, 1) * sizeof(double))
    a.box = <int32_t *>malloc(max(R, 1) * 5 * sizeof(int32_t))
    a.tables = NULL
    a.tables_failed = False
    a.n_samples = 0
    a.sample_bytes = sizeof(roipool_f64_sample_t) if floating is double \
        else sizeof(roipool_f32_sample_t)
    if (not _workspace_alloc(ws, R, 1, rule.N, True) or geo == NULL or a.per_bin == NULL
            or a.at == NULL or a.count == NULL or a.box == NULL):
        return NO_MEMORY
    for r in range(R):
        status = _check_batch(<double>rois[r, 0], rule.N, r, ws.geom + r)
        if status == OK:
            for j in range(1, 5):
                if not isfinite(rois[r, j]):
                    status = r * ROW_CODES + BAD_COORD_NONFINITE
                    break
        if status != OK:
            n_ok = r
            break
    # Rows are checked one at a time: a bad size before the first bad batch
    # index or coordinate is the error reported.
    sizes = _align_sizes(rois, rule, a, geo, n_ok)
    if sizes != OK:
        status = sizes
    if status == OK:
        _group_by_image(ws, R, rule.N)
        if a.at[R] < _MAX_SAMPLES:
            a.tables = <char *>malloc(max(a.at[R], 1) * a.sample_bytes)
        if a.tables == NULL:
            status = NO_MEMORY
            a.tables_failed = True
    if status == OK and not backward:  # the boxes choose the forward's layout
        for r in prange(R, schedule='dynamic', num_threads=max(1, min(n_threads, R))):
            failed += not _align_box(geo, R, r, rule, a)
        if failed:
            status = NO_MEMORY
    return status


cdef Py_ssize_t _align_tables(floating kind, AlignRois *a, Py_ssize_t R, const AlignSpec *rule,
                              bint backward, Py_ssize_t ring, int n_threads) noexcept nogil:
    """Every ROI's sample table (in parallel; map rows modulo ring when
    ring > 0); OK or NO_MEMORY. `kind` is the compute type."""
    cdef Py_ssize_t r, failed = 0
    for r in prange(R, schedule='dynamic', num_threads=max(1, min(n_threads, R))):
        failed += not _align_fill(<const floating *>a.geo, R, r, rule, a, backward, ring)
    return NO_MEMORY if failed else OK


cdef inline bint _pow2(double x) noexcept nogil:
    """x is a power of two >= 1: dividing by it is multiplying by 1 / x,
    bit for bit (the same real quotient, rounded once either way)."""
    cdef int64_t n
    if not (x >= 1.0 and x < 4.0e18):  # NaN and inf too
        return False
    n = <int64_t>x
    return <double>n == x and (n & (n - 1)) == 0


cdef enum:
    _ALIGN_MIN_BLOCK = 16
    _ALIGN_MAX_BLOCK = 32


# ---- forward: a task function of the shared plan (_run_plan) ---------------

cdef int _cmp_key(const void *a, const void *b) noexcept nogil:
    cdef int64_t x = (<const int64_t *>a)[0], y = (<const int64_t *>b)[0]
    return (x > y) - (x < y)


cdef void _sweep_order(Workspace *ws, const int32_t *box, Py_ssize_t N) noexcept nogil:
    """Each image's ROIs in ws.order by the last row they read, then by
    index (the forward's results do not depend on the order)."""
    cdef Py_ssize_t n, i, first, count
    cdef int64_t *keys
    for n in range(N):
        first, count = ws.offsets[n], ws.offsets[n + 1] - ws.offsets[n]
        if count < 2:
            continue
        keys = <int64_t *>malloc(count * sizeof(int64_t))
        if keys == NULL:
            return  # the order stays ascending: only slower
        for i in range(count):
            keys[i] = (<int64_t>box[5 * ws.order[first + i] + 1] << 32) | ws.order[first + i]
        qsort(keys, count, sizeof(int64_t), _cmp_key)
        for i in range(count):
            ws.order[first + i] = <Py_ssize_t>(keys[i] & ((<int64_t>1 << 32) - 1))
        free(keys)


ctypedef struct AlignPlan:
    ForwardPlan base  # first: the shared machinery gets &plan.base
    AlignRois a


cdef void _align_ring(ForwardPlan *p, Py_ssize_t R, const int32_t *box) noexcept nogil:
    """A block past the cache budget: a ring of rows instead, if the rows
    of every ROI fit one that stays within the budget (the tables then
    address map row h as row h % ring_rows). Each task then copies only the
    tiles its ROIs read, row by row as its ROIs (by their last row) need
    them, into L2 and never back out: the map is read once and the copy
    costs no memory traffic."""
    cdef Py_ssize_t r, span = 1
    for r in range(R):
        span = max(span, box[5 * r + 1] - box[5 * r] + 1)
    if span * p.W * p.block_channels * p.itemsize <= _cache_budget:
        p.ring_rows = span
        _sweep_order(&p.ws, box, p.N)
        roipool_count(&_ring_plans)


cdef void _align_task(const ForwardPlan *p, const Task *task, const Scratch *s,
                      floating kind) noexcept nogil:
    """One task: the channel block (_task_block; with a ring, the rows each
    ROI reads gathered just before it), then per ROI the kernel of the
    storage type over its table, bins in groups, stored by _store."""
    cdef const AlignRois *a = &(<const AlignPlan *>p).a
    cdef Py_ssize_t roi_bins = p.PH * p.PW, group_bins = p.group_bins
    cdef Py_ssize_t c0 = task.c0, nc = min(p.block_channels, p.C - c0), i, r, k0, k1, n
    cdef Py_ssize_t next_row = 0
    cdef int rmode = p.rmode, max_mode = a.max_mode
    cdef roipool_block_t view
    cdef const char *table
    cdef const int32_t *box
    cdef double count, rc
    _task_block(p, task, s, &view)
    if p.ring_rows:
        for i in range(task.first, task.end):
            box = a.box + 5 * p.ws.order[i]
            if box[4]:
                _mark_tiles(p, s, 0, 0, 0, 0)
            if box[2] <= box[3]:
                _mark_tiles(p, s, box[0], box[1], box[2], box[3])
    for i in range(task.first, task.end):
        r = p.ws.order[i]
        if p.ring_rows:
            # the ROIs come by their last row: the rows up to it, as the
            # sweep goes; its first row is at most ring_rows - 1 above, so
            # still in the ring
            box = a.box + 5 * r
            while next_row <= box[1]:
                _gather_row(p, task, s, next_row)
                next_row += 1
        n = a.per_bin[r]
        count = a.count[r]
        rc = 1.0 / count if _pow2(count) else 0.0
        k0 = 0
        while k0 < roi_bins:
            k1 = min(k0 + group_bins, roi_bins)
            table = a.tables + (a.at[r] + k0 * n) * a.sample_bytes
            if floating is double:
                roipool_kernels.align_fwd_f64(view.base, view.col_stride, nc, 0, table, n, k1 - k0,
                                   count, rc, max_mode, <double *>s.res)
            elif rmode == RMODE_HALF:
                roipool_kernels.align_fwd_f16(view.base, view.col_stride, nc, 0, table, n, k1 - k0,
                                   <float>count, <float>rc, max_mode, <uint16_t *>s.res)
            elif rmode == RMODE_BF16:
                roipool_kernels.align_fwd_bf16(view.base, view.col_stride, nc, 0, table, n, k1 - k0,
                                    <float>count, <float>rc, max_mode, <uint16_t *>s.res)
            else:
                roipool_kernels.align_fwd_f32(view.base, view.col_stride, nc, 0, table, n, k1 - k0,
                                   <float>count, <float>rc, max_mode, <float *>s.res)
            _store(p, s, False, r, c0, nc, k0, k1)
            k0 = k1
    if p.stream:
        roipool_store_fence()


cdef void _align_task_f32(const ForwardPlan *p, const Task *task,
                          const Scratch *s) noexcept nogil:
    _align_task(p, task, s, <float>0)


cdef void _align_task_f64(const ForwardPlan *p, const Task *task,
                          const Scratch *s) noexcept nogil:
    _align_task(p, task, s, <double>0)


cdef Py_ssize_t _align_forward(AlignPlan *plan, const floating[:, ::1] rois,
                               const AlignSpec *rule, int n_threads) noexcept nogil:
    """plan.base holds the map and the output (_plan_arrays)."""
    cdef ForwardPlan *p = &plan.base
    cdef Py_ssize_t R = rois.shape[0], status
    plan.a.per_bin = plan.a.at = NULL
    plan.a.count = NULL
    plan.a.tables = NULL
    plan.a.box = NULL
    plan.a.geo = NULL
    p.ws.geom = p.ws.order = p.ws.offsets = NULL
    status = _align_prepare(rois, rule, &plan.a, &p.ws, False, n_threads)
    if status == OK and p.out != NULL and R > 0 and p.C > 0:
        _plan_layout(p, R)
        # the tables address pixel h * W + w: read in place only a map whose
        # rows are W pixels apart and whose channels are adjacent
        p.gather = p.gather or p.stride_h != p.W * p.stride_w
        p.block_channels = _block_size(p.C, p.H * p.W, p.itemsize, p.gather)
        # A ROI reads a few rows of the block, not all of it: blocks of at
        # least 16 channels (a 64-byte vector of floats) even past the cache
        # budget, which measured faster on fpn-p2 and mask-p2; at most 32,
        # which left more of L2 to the results and their staging and was 8%
        # faster than 64 on d2-c4 (41.5 against 45 ms at 1 thread, 22 against
        # 23.6 ms at 2 on an Intel Xeon).
        p.block_channels = min(max(p.block_channels, min(p.C, _ALIGN_MIN_BLOCK)),
                               _ALIGN_MAX_BLOCK)
        if p.gather and p.block_channels * p.H * p.W * p.itemsize > _cache_budget:
            _align_ring(p, R, plan.a.box)
        status = _align_tables(<floating>0, &plan.a, R, rule, False, p.ring_rows, n_threads)
    if status == OK and p.out != NULL and R > 0 and p.C > 0:
        status = _run_plan(p, n_threads,
                           _align_task_f64 if floating is double else _align_task_f32)
    _free_align(&plan.a)
    _workspace_free(&p.ws)
    return status


cdef class AlignRule(Rule):
    """RoIAlign's rule: Rule's scale (scale_t: as the kernel starts from it,
    _validate.check_align_scale), rounding and pooled size, and its own
    arguments."""
    cdef public bint aligned, max_mode
    cdef public Py_ssize_t sampling


def align_forward(Call call not None):
    """RoIAlign forward of call (a Call whose rule is an AlignRule, out
    given, no argmax); returns Status.OK, Status.NO_MEMORY or a bad row as
    r * ROW_CODES + RowError."""
    cdef AlignRule rule = call.rule
    cdef AlignSpec spec
    cdef AlignPlan plan
    cdef RoiRule r = rule.c
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(call.data)
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Py_ssize_t status
    cdef int n_threads = call.n_threads
    r.N, r.H, r.W = shape[0], shape[2], shape[3]
    _plan_arrays(&plan.base, call.data, call.out, None, &r)
    _align_spec(&spec, rule.c.scale_t, rule.aligned, rule.sampling, rule.c.rmode)
    spec.N, spec.H, spec.W, spec.PH, spec.PW = r.N, r.H, r.W, r.PH, r.PW
    plan.a.max_mode = rule.max_mode
    if plan.base.itemsize == 8:
        r64 = call.rois
        with nogil:
            status = _align_forward(&plan, r64, &spec, n_threads)
    else:
        r32 = call.rois
        with nogil:
            status = _align_forward(&plan, r32, &spec, n_threads)
    _raise_if_tables_failed(&plan.a)
    return status


# ---- backward ----------------------------------------------------------------

cdef void _round_bf16(float *x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        x[i] = roipool_round_bf16(x[i])


ctypedef struct AlignBack:
    # one backward call: grad_out [R, C, PH, PW] and grad [N, C, H, W],
    # C-contiguous, storage type (size bytes), and the ROIs' sample tables
    const char *grad_out
    char *grad
    AlignRois a
    Workspace ws
    Py_ssize_t C, HW, roi_bins, size
    int rmode


cdef void _align_back_block(const AlignBack *p, floating *acc, floating *g, char *go_t,
                            Py_ssize_t n, Py_ssize_t c0, Py_ssize_t nc) noexcept nogil:
    """Planes c0 .. c0 + nc of image n, pixel-major in acc (compute type):
    zeroed, then the image's ROIs added in ascending order, each from its
    grad_out chunk transposed to g ([bins, nc]; go_t: storage scratch)."""
    cdef const AlignRois *a = &p.a
    cdef Py_ssize_t i, r, roi_bins = p.roi_bins
    cdef const char *chunk
    cdef const char *table
    cdef double count, rc
    memset(acc, 0, p.HW * nc * sizeof(floating))
    for i in range(p.ws.offsets[n], p.ws.offsets[n + 1]):
        r = p.ws.order[i]
        if a.per_bin[r] == 0:
            continue
        chunk = p.grad_out + (r * p.C + c0) * roi_bins * p.size
        table = a.tables + a.at[r] * a.sample_bytes
        count = a.count[r]
        rc = 1.0 / count if _pow2(count) else 0.0
        if floating is double:
            roipool_transpose64(chunk, roi_bins, roi_bins, nc, nc, g)
            roipool_kernels.align_bwd_f64(acc, nc, 0, g, table, a.per_bin[r], roi_bins, count, rc)
        elif p.rmode == RMODE_NONE:
            roipool_kernels.transpose32(chunk, roi_bins, roi_bins, nc, nc, g)
            roipool_kernels.align_bwd_f32(acc, nc, 0, g, table, a.per_bin[r], roi_bins,
                                          <float>count, <float>rc)
        else:
            roipool_kernels.transpose16(chunk, roi_bins, roi_bins, nc, nc, go_t)
            if p.rmode == RMODE_HALF:
                roipool_kernels.widen_f16(<const uint16_t *>go_t, roi_bins * nc, g)
                roipool_kernels.align_bwd_f16(acc, nc, 0, g, table, a.per_bin[r], roi_bins,
                                              <float>count, <float>rc)
            else:
                roipool_kernels.widen_bf16(<const uint16_t *>go_t, roi_bins * nc, g)
                roipool_kernels.align_bwd_bf16(acc, nc, 0, g, table, a.per_bin[r], roi_bins,
                                               <float>count, <float>rc)


cdef Py_ssize_t _align_backward(floating kind, AlignBack *p, const floating[:, ::1] rois,
                                const AlignSpec *rule, int n_threads) noexcept nogil:
    """The backward of p; `kind` is the compute type. One thread owns each
    (image, channel block) of planes and adds the ROIs in ascending order:
    torchvision's serial order for every plane, for any thread count."""
    cdef Py_ssize_t N = rule.N, C = p.C, HW = p.HW, roi_bins = p.roi_bins, size = p.size
    cdef Py_ssize_t status, t, n, c0, nc, B, n_blocks, n_workers, per_thread, tid = 0
    cdef int rmode = p.rmode
    cdef char *scratch = NULL
    cdef floating *acc
    cdef floating *g
    cdef char *go_t
    cdef char *dst
    p.a.per_bin = p.a.at = NULL
    p.a.count = NULL
    p.a.tables = NULL
    p.a.box = NULL
    p.a.geo = NULL
    p.a.max_mode = False
    p.ws.geom = p.ws.order = p.ws.offsets = NULL
    status = _align_prepare(rois, rule, &p.a, &p.ws, True, n_threads)
    if status == OK:
        status = _align_tables(kind, &p.a, rois.shape[0], rule, True, 0, n_threads)
    if status != OK or N * C * HW == 0:
        _free_align(&p.a); _workspace_free(&p.ws)
        return status
    B = _block_size(C, HW, sizeof(floating), True)
    while B > 1 and N * ((C + B - 1) // B) < 2 * n_threads:
        B = (B + 1) // 2
    n_blocks = (C + B - 1) // B
    n_workers = max(1, min(<Py_ssize_t>n_threads, N * n_blocks))
    # per thread: the planes (compute type), then one ROI's grad_out chunk
    # transposed (compute type) and in the storage type
    per_thread = _align64(B * HW * sizeof(floating)) + _align64(B * roi_bins * sizeof(floating)) \
        + _align64(B * max(HW, roi_bins) * size)
    scratch = <char *>malloc(n_workers * per_thread + 64)
    if scratch == NULL:
        _free_align(&p.a); _workspace_free(&p.ws)
        return NO_MEMORY
    with parallel(num_threads=n_workers):
        tid = omp_get_thread_num()
        acc = <floating *>(<char *>((<size_t>scratch + 63) // 64 * 64) + tid * per_thread)
        g = <floating *>(<char *>acc + _align64(B * HW * sizeof(floating)))
        go_t = <char *>g + _align64(B * roi_bins * sizeof(floating))
        for t in prange(N * n_blocks, schedule='dynamic'):
            n = t // n_blocks
            c0 = (t % n_blocks) * B
            nc = min(B, C - c0)
            _align_back_block(p, acc, g, go_t, n, c0, nc)
            dst = p.grad + (n * C + c0) * HW * size
            if floating is double:
                roipool_transpose64(acc, nc, nc, HW, HW, dst)
            elif rmode == RMODE_NONE:
                roipool_kernels.transpose32(acc, nc, nc, HW, HW, dst)
            else:
                if rmode == RMODE_HALF:
                    roipool_kernels.narrow_f16(<const float *>acc, nc * HW, <uint16_t *>go_t)
                else:  # the float32 sums, rounded once
                    _round_bf16(<float *>acc, nc * HW)
                    roipool_kernels.narrow_bf16(<const float *>acc, nc * HW, <uint16_t *>go_t)
                roipool_kernels.transpose16(go_t, nc, nc, HW, HW, dst)
    _free_align(&p.a); _workspace_free(&p.ws); free(scratch)
    return OK


def align_backward(cnp.ndarray grad_out not None, rois, cnp.ndarray grad not None,
                   AlignRule rule not None, int n_threads):
    """RoIAlign backward of grad_out [R, C, PH, PW] into grad [N, C, H, W]
    (all C-contiguous, storage type, native byte order) under rule (an
    AlignRule: scale, rounding, aligned, sampling; the pooled size is
    grad_out's). Returns OK, NO_MEMORY or a bad row code."""
    cdef AlignSpec spec
    cdef AlignBack back
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(grad_out)
    cdef const cnp.npy_intp *gshape = cnp.PyArray_DIMS(grad)
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Py_ssize_t status
    cdef int rmode = rule.c.rmode
    _align_spec(&spec, rule.c.scale_t, rule.aligned, rule.sampling, rmode)
    spec.N, spec.H, spec.W, spec.PH, spec.PW = gshape[0], gshape[2], gshape[3], shape[2], shape[3]
    back.grad_out = <const char *>cnp.PyArray_DATA(grad_out)
    back.grad = <char *>cnp.PyArray_DATA(grad)
    back.C, back.HW, back.roi_bins = shape[1], spec.H * spec.W, spec.PH * spec.PW
    back.rmode = rmode
    if cnp.PyArray_ITEMSIZE(grad_out) == 8:
        back.size = 8
        r64 = rois
        with nogil:
            status = _align_backward(<double>0, &back, r64, &spec, n_threads)
    else:
        back.size = 4 if rmode == RMODE_NONE else 2
        r32 = rois
        with nogil:
            status = _align_backward(<float>0, &back, r32, &spec, n_threads)
    _raise_if_tables_failed(&back.a)
    return status
