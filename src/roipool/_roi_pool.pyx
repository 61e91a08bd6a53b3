# Compiled kernels of roipool: the extension module. The machinery every
# operator shares is _plan.pxi, run-time queries _runtime.pxi (both included
# below); this file holds RoIPool's own code: its rule, task and entry points.
# Another operator is one more included file (CONTRIBUTING.md, "How to add an
# operator").
#
# Everything here assumes what the Python layer checked (roipool/_validate.py)
# and prepared (roipool/_arrays.py): dtypes, ranks, C-contiguous
# rois/out/argmax/grad buffers, positive pooled sizes, a thread count >= 1.
# The one scan that has to look at values (ROI rows, argmax range) reports
# the first offending row or the extremes as a Status / RowError code;
# roipool/_status.py turns them into exceptions. No output is written before
# that scan has passed. The SIMD loops are C, under simd/ (see simd/simd.h).

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, ceil, fabs, floor, isfinite, round, trunc
from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memcpy, memset

from roipool._openmp cimport (ROIPOOL_OPENMP, omp_get_max_threads, omp_get_thread_num,
                              roipool_omp_pause)

cnp.import_array()

from roipool._simd cimport (roipool_block_t, roipool_f32_sample_t, roipool_f64_sample_t,
                            roipool_isa_names,
                            roipool_isa_supported, roipool_kernels, roipool_kernels_t,
                            roipool_l2_cache_bytes, roipool_prefetch, roipool_round_bf16,
                            roipool_round_half, roipool_set_isa, roipool_store_fence,
                            roipool_transpose64, ROIPOOL_ISA_COUNT)

include "_plan.pxi"

cdef extern from "float.h":
    const float FLT_MAX


# ---- RoIPool: its rule (ROI rows to bins), its task, its entry points --------

cdef inline int64_t _to_i64(double v) noexcept nogil:
    # Bin bounds are clipped right after; only float16 can overflow here
    # (a product rounding to +-inf), and that saturates instead of being UB.
    if v > 4.0e18:
        return <int64_t>4000000000000000000
    if v < -4.0e18:
        return -<int64_t>4000000000000000000
    return <int64_t>v


cdef inline int64_t _clip(int64_t v, int64_t hi) noexcept nogil:
    return 0 if v < 0 else (hi if v > hi else v)


# How ROI rows become bins (docs/semantics.md, "The rule"): what one call
# gives _prepare.
cdef enum:
    # how much _prepare does
    SCAN_BATCH = 0     # batch column, finite coordinates (backward)
    SCAN_SCALED = 1    # + scaled coordinates fit a C int (forward, empty output)
    SCAN_GEOMETRY = 2  # + bin bounds and the batch grouping (forward)


cdef inline Py_ssize_t _geom_len(Py_ssize_t PH, Py_ssize_t PW) noexcept nogil:
    """Length of one ROI's geometry row: b, hstart[PH], hend[PH], wstart[PW], wend[PW]."""
    return 1 + 2 * PH + 2 * PW


cdef Py_ssize_t _prepare(const floating[:, ::1] rois, const RoiRule *rule, int scan,
                         Workspace *ws) noexcept nogil:
    """Per ROI: batch index and clipped bin bounds into ws.geom (row r:
    ws.row_len values, _geom_len(PH, PW) at SCAN_GEOMETRY, else just [b]);
    ROIs grouped by image when the workspace has order/offsets. Returns OK
    or the first bad row as r * ROW_CODES + RowError."""
    cdef Py_ssize_t R = rois.shape[0], N = rule.N, H = rule.H, W = rule.W
    cdef Py_ssize_t PH = rule.PH, PW = rule.PW
    cdef int rmode = rule.rmode
    cdef Py_ssize_t row_len = ws.row_len
    cdef Py_ssize_t *geom = ws.geom
    cdef Py_ssize_t r, j, k, status
    cdef floating x, scale = <floating>rule.scale_t, bin_h, bin_w, size_h, size_w
    cdef floating pooled_h = _as_storage(<floating>PH, rmode)
    cdef floating pooled_w = _as_storage(<floating>PW, rmode)
    cdef double scaled
    cdef int64_t corner[4]  # x1, y1, x2, y2 scaled and rounded
    cdef int64_t roi_h, roi_w
    cdef Py_ssize_t *row

    for r in range(R):
        row = geom + r * row_len
        status = _check_batch(<double>rois[r, 0], N, r, row)
        if status != OK:
            return status
        for j in range(4):
            x = rois[r, j + 1]
            if not isfinite(x):
                return r * ROW_CODES + BAD_COORD_NONFINITE
            if scan == SCAN_BATCH:
                continue
            if rule.torchvision:
                # torchvision: coordinate times the double spatial_scale
                scaled = <double>x * rule.scale_d
            else:
                scaled = _as_storage(x * scale, rmode)
            if not (fabs(scaled) < 2147483648.0):
                return r * ROW_CODES + BAD_COORD_RANGE
            corner[j] = <int64_t>round(scaled)  # C round(): halves away from zero
        if scan != SCAN_GEOMETRY:
            continue
        # force malformed ROIs to be 1 x 1 (MXNet)
        roi_w = corner[2] - corner[0] + 1
        roi_h = corner[3] - corner[1] + 1
        if roi_w < 1:
            roi_w = 1
        if roi_h < 1:
            roi_h = 1
        size_h = _as_storage(<floating>roi_h, rmode)
        size_w = _as_storage(<floating>roi_w, rmode)
        if not (isfinite(size_h) and isfinite(size_w)
                and isfinite(pooled_h) and isfinite(pooled_w)):
            return r * ROW_CODES + BAD_SIZE_RANGE
        bin_h = _as_storage(size_h / pooled_h, rmode)
        bin_w = _as_storage(size_w / pooled_w, rmode)
        for k in range(PH):
            row[1 + k] = _clip(_to_i64(floor(_as_storage(
                _as_storage(<floating>k, rmode) * bin_h, rmode))) + corner[1], H)
            row[1 + PH + k] = _clip(_to_i64(ceil(_as_storage(
                _as_storage(<floating>(k + 1), rmode) * bin_h, rmode))) + corner[1], H)
        for k in range(PW):
            row[1 + 2 * PH + k] = _clip(_to_i64(floor(_as_storage(
                _as_storage(<floating>k, rmode) * bin_w, rmode))) + corner[0], W)
            row[1 + 2 * PH + PW + k] = _clip(_to_i64(ceil(_as_storage(
                _as_storage(<floating>(k + 1), rmode) * bin_w, rmode))) + corner[0], W)

    if ws.offsets != NULL:
        _group_by_image(ws, R, N)
    return OK


cdef void _pool_task(const ForwardPlan *p, const Task *task, const Scratch *s,
                     floating init) noexcept nogil:
    """Pool one task with this thread's scratch; `init` (the running max's
    start) selects the compute type, p.itemsize and p.rmode the storage type
    of data, out and scratch (float16/bfloat16 are converted in registers)."""
    cdef Py_ssize_t PH = p.PH, PW = p.PW, roi_bins = PH * PW
    cdef Py_ssize_t c0 = task.c0, nc = min(p.block_channels, p.C - c0)
    cdef Py_ssize_t geom_len = _geom_len(PH, PW), group_bins = p.group_bins
    cdef int rmode = p.rmode
    cdef const Py_ssize_t *geom = p.ws.geom
    cdef const Py_ssize_t *order = p.ws.order
    cdef char *argmax = p.argmax
    # without argmax the kernels keep the values only (no compare and blend)
    cdef int32_t *ires = s.ires if argmax != NULL else NULL
    cdef Py_ssize_t i, r, k0, k1
    cdef roipool_block_t view
    cdef const Py_ssize_t *bounds
    _task_block(p, task, s, &view)
    # Bins go to a channel-minor scratch (the SIMD layout) in groups of
    # group_bins, then to out/argmax with sequential writes: a strided
    # write per value costs a cache line each, more than the max itself.
    for i in range(task.first, task.end):
        r = order[i]
        bounds = geom + r * geom_len + 1
        k0 = 0
        while k0 < roi_bins:
            k1 = min(k0 + group_bins, roi_bins)
            if floating is double:
                roipool_kernels.roi_max_f64(&view, bounds, PH, PW, k0, k1, init,
                                            <double *>s.res, ires, <int64_t *>s.idx)
            elif rmode == RMODE_HALF:
                roipool_kernels.roi_max_f16(&view, bounds, PH, PW, k0, k1, init,
                                            <uint16_t *>s.res, ires, <int32_t *>s.idx)
            elif rmode == RMODE_BF16:
                roipool_kernels.roi_max_bf16(&view, bounds, PH, PW, k0, k1, init,
                                             <uint16_t *>s.res, ires, <int32_t *>s.idx)
            else:
                roipool_kernels.roi_max_f32(&view, bounds, PH, PW, k0, k1, init,
                                            <float *>s.res, ires, <int32_t *>s.idx)
            _store(p, s, False, r, c0, nc, k0, k1)
            if argmax != NULL:  # callers that only want out skip half the writes
                _store(p, s, True, r, c0, nc, k0, k1)
            k0 = k1
    if p.stream:
        roipool_store_fence()


cdef void _pool_task_f32(const ForwardPlan *p, const Task *task, const Scratch *s) noexcept nogil:
    # float32 compute: float32, float16, bfloat16 data
    _pool_task(p, task, s, <float>(-FLT_MAX if p.rmode == RMODE_NONE else -INFINITY))


cdef void _pool_task_f64(const ForwardPlan *p, const Task *task, const Scratch *s) noexcept nogil:
    _pool_task(p, task, s, <double>-FLT_MAX)


cdef Py_ssize_t _forward(ForwardPlan *p, const floating[:, ::1] rois,
                         const RoiRule *rule, int n_threads) noexcept nogil:
    """p holds the map and the outputs (_plan_arrays); the rest is set here."""
    cdef Py_ssize_t R = rois.shape[0], status = NO_MEMORY
    cdef bint empty = p.out == NULL or p.C == 0  # nothing to write: only the ROI checks
    if _workspace_alloc(&p.ws, R, 1 if empty else _geom_len(p.PH, p.PW), rule.N, not empty):
        status = _prepare(rois, rule, SCAN_SCALED if empty else SCAN_GEOMETRY, &p.ws)
    if status == OK and not empty and R > 0:
        _plan_layout(p, R)
        status = _run_plan(p, n_threads,
                           _pool_task_f64 if floating is double else _pool_task_f32)
    _workspace_free(&p.ws)
    return status


def forward(Call call not None):
    """Pool call.data into call.out (and call.argmax); returns Status.OK,
    Status.NO_MEMORY or a bad row as r * ROW_CODES + RowError.

    data: [N, C, H, W] in native byte order, any strides whose byte counts are
    multiples of the item size: float32/float64, or float16/bfloat16 (the
    rule's rmode says which) read as they are; rois C-contiguous in the
    compute dtype (float32 for the halves); out/argmax: [R, C, PH, PW] in
    data's dtype / int32 whose memory is C-contiguous [R, C, PH, PW] or
    channels-last [R, PH, PW, C]; argmax may be None.
    """
    return _forward_arrays(call.data, call.rois, call.rule, call.out, call.argmax,
                           call.n_threads)


# The plain call (roipool._ops._plain_call) costs mostly its Python steps on a
# small call; plain_arrays and plain_call do its array steps
# through the C API: reading a few fields and allocating cost far less than
# the attribute lookups, flags objects and argument parsing of the same steps
# in Python.
cdef object _F32 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT32)
cdef object _F64 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT64)


def plain_arrays(data, rois, Py_ssize_t max_hw, Py_ssize_t max_batch):
    """Whether data and rois are NumPy arrays the kernel takes as they are:
    exactly ndarrays, native float32 or float64 (the dtype singletons), rois
    of data's dtype, C-contiguous [R, 5], both aligned, data 4-D with
    H * W <= max_hw and N <= max_batch. Such arrays pass every check of
    roipool._validate's check_data and check_rois without a copy."""
    if type(data) is not cnp.ndarray or type(rois) is not cnp.ndarray:
        return False
    cdef cnp.ndarray d = <cnp.ndarray>data, r = <cnp.ndarray>rois
    cdef object dt = <object>cnp.PyArray_DESCR(d)
    if (dt is not _F32 and dt is not _F64) or <object>cnp.PyArray_DESCR(r) is not dt:
        return False
    if cnp.PyArray_NDIM(d) != 4 or cnp.PyArray_NDIM(r) != 2 or cnp.PyArray_DIMS(r)[1] != 5:
        return False
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(d)
    # H * W > max_hw, without the product (it may overflow)
    if shape[2] != 0 and shape[3] > max_hw // shape[2] or shape[0] > max_batch:
        return False
    return (cnp.PyArray_IS_C_CONTIGUOUS(r) and cnp.PyArray_ISALIGNED(r)
            and cnp.PyArray_ISALIGNED(d))


def plain_call(cnp.ndarray data not None, rois, Rule rule not None, int n_threads,
               bint want_argmax):
    """The Call of a plain call (arrays plain_arrays() accepted) with its new
    outputs (new_outputs): made here, without parsing Call's arguments."""
    cdef Call call = Call.__new__(Call)
    call.data, call.rois, call.rule = data, rois, rule
    call.n_threads, call.want_argmax = n_threads, want_argmax
    new_outputs(call)
    return call


cdef Py_ssize_t _forward_arrays(cnp.ndarray data, rois, Rule rule, cnp.ndarray out,
                                cnp.ndarray argmax, int n_threads) except? -1:
    """forward()'s work: the plan's arrays, the call's rule on this map, the
    kernel of data's compute type."""
    cdef ForwardPlan p
    cdef RoiRule r = rule.c  # a copy: a Rule is shared by calls on other maps
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(data)
    r.N, r.H, r.W = shape[0], shape[2], shape[3]
    _plan_arrays(&p, data, out, argmax, &r)
    if p.itemsize == 8:
        return _forward_call(<double>0, &p, rois, &r, n_threads)
    return _forward_call(<float>0, &p, rois, &r, n_threads)


cdef Py_ssize_t _forward_call(floating kind, ForwardPlan *p, rois, const RoiRule *rule,
                              int n_threads):
    """A typed view of rois for _forward[floating] (`kind`, the compute type,
    only selects the type)."""
    cdef const floating[:, ::1] r = rois
    cdef Py_ssize_t status
    with nogil:
        status = _forward(p, r, rule, n_threads)
    return status

# ---- backward ----------------------------------------------------------------

cdef inline bint _scatter(floating *plane, const floating *go, const int32_t *am,
                          const floating *go_next, const int32_t *am_next,
                          Py_ssize_t nc, Py_ssize_t roi_bins, Py_ssize_t HW) noexcept nogil:
    """Add one ROI's grad_out chunk (nc channels) into the planes at argmax;
    True when an argmax value lies outside [-1, H*W) (it is skipped). The
    next ROI's chunks (go_next, am_next; NULL for none) are prefetched."""
    cdef Py_ssize_t c, k
    cdef int32_t a
    cdef bint bad = False
    for c in range(nc):
        # The chunks of consecutive ROIs lie C*PH*PW elements apart, so the
        # hardware prefetcher restarts cold on each; hint the next one, a
        # 64-byte line at a time, while this one is added.
        if go_next != NULL:
            _prefetch_chunk(go_next + c * roi_bins, am_next + c * roi_bins,
                            roi_bins, sizeof(floating))
        for k in range(roi_bins):
            a = am[c * roi_bins + k]
            if <size_t>a < <size_t>HW:  # 0 <= a < H*W
                plane[c * HW + a] += go[c * roi_bins + k]
            elif a != -1:
                bad = True
    return bad


cdef inline void _prefetch_chunk(const void *go, const int32_t *am, Py_ssize_t n,
                                 Py_ssize_t size) noexcept nogil:
    """Read hints for n grad_out elements of `size` bytes and their argmax."""
    cdef Py_ssize_t k = 0
    while k < n * size:
        roipool_prefetch(<const char *>go + k)
        k += 64
    k = 0
    while k < n:
        roipool_prefetch(am + k)
        k += 16


ctypedef struct BackwardPlan:
    # grad_out [R, C, PH, PW] and grad [N, C, H, W]: C-contiguous, storage
    # type (itemsize bytes; float16/bfloat16 as bits, rmode tells which)
    const char *grad_out
    const int32_t *argmax  # [R, C, PH, PW]
    char *grad
    Py_ssize_t itemsize
    int rmode
    Py_ssize_t N, C, HW, roi_bins
    Py_ssize_t block_channels, n_blocks  # planes per task, tasks per image
    RoiRule rule  # the ROI scan's: batch column only
    Workspace ws  # ROI rows hold just b; grouped by image
    unsigned char *bad  # per task: an argmax value was out of range
    # float16/bfloat16: per thread B float32 planes, then one ROI's chunk
    float *scratch
    Py_ssize_t thread_floats


cdef bint _backward_block(const BackwardPlan *p, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t nc,
                          floating *plane) noexcept nogil:
    """Planes c0 .. c0 + nc of image n: zero, then its ROIs added in
    ascending order. True when an argmax value was out of range."""
    cdef Py_ssize_t i, r, C = p.C, roi_bins = p.roi_bins
    cdef Py_ssize_t first = p.ws.offsets[n], end = p.ws.offsets[n + 1]
    cdef const Py_ssize_t *order = p.ws.order
    cdef const floating *grad_out = <const floating *>p.grad_out
    cdef const int32_t *argmax = p.argmax
    cdef const floating *go_next
    cdef const int32_t *am_next
    cdef bint bad = False
    memset(plane, 0, nc * p.HW * sizeof(floating))
    for i in range(first, end):
        r = order[i]
        go_next = NULL
        am_next = NULL
        if i + 1 < end:
            go_next = grad_out + (order[i + 1] * C + c0) * roi_bins
            am_next = argmax + (order[i + 1] * C + c0) * roi_bins
        bad |= _scatter(plane, grad_out + (r * C + c0) * roi_bins,
                        argmax + (r * C + c0) * roi_bins, go_next, am_next, nc, roi_bins, p.HW)
    return bad


cdef bint _backward_block_half(const BackwardPlan *p, Py_ssize_t n, Py_ssize_t c0,
                               Py_ssize_t nc, float *plane, float *chunk) noexcept nogil:
    """_backward_block for float16/bfloat16 (p.rmode): each ROI's chunk is
    widened to float32 (`chunk`, nc * roi_bins floats) by the active ISA's
    kernels, which then add it with every add rounded, as in half_t."""
    cdef Py_ssize_t i, off, C = p.C, roi_bins = p.roi_bins, n_vals = nc * roi_bins
    cdef Py_ssize_t first = p.ws.offsets[n], end = p.ws.offsets[n + 1]
    cdef const Py_ssize_t *order = p.ws.order
    cdef const uint16_t *grad_out = <const uint16_t *>p.grad_out
    cdef const int32_t *argmax = p.argmax
    cdef bint bad = False
    cdef int g_nan
    memset(plane, 0, nc * p.HW * sizeof(float))
    for i in range(first, end):
        off = (order[i] * C + c0) * roi_bins
        if p.rmode == RMODE_HALF:
            g_nan = roipool_kernels.widen_f16(grad_out + off, n_vals, chunk)
        else:
            g_nan = roipool_kernels.widen_bf16(grad_out + off, n_vals, chunk)
        if i + 1 < end:  # see _scatter
            off = (order[i + 1] * C + c0) * roi_bins
            _prefetch_chunk(grad_out + off, argmax + off, n_vals, 2)
            off = (order[i] * C + c0) * roi_bins
        if p.rmode == RMODE_HALF:
            bad |= roipool_kernels.scatter_f16(plane, chunk, argmax + off, nc, roi_bins, p.HW,
                                               g_nan)
        else:
            bad |= roipool_kernels.scatter_bf16(plane, chunk, argmax + off, nc, roi_bins, p.HW,
                                                g_nan)
    return bad


cdef void _backward_task(const BackwardPlan *p, Py_ssize_t t, float *thread_scratch,
                         floating kind) noexcept nogil:
    """Task t: one (image, channel block) of grad; `kind` is the compute type."""
    cdef Py_ssize_t n = t // p.n_blocks, c0 = (t % p.n_blocks) * p.block_channels
    cdef Py_ssize_t nc = min(p.block_channels, p.C - c0)
    cdef char *grad = p.grad + (n * p.C + c0) * p.HW * p.itemsize
    if p.rmode == RMODE_NONE:
        p.bad[t] = _backward_block(p, n, c0, nc, <floating *>grad)
        return
    p.bad[t] = _backward_block_half(p, n, c0, nc, thread_scratch,
                                    thread_scratch + p.block_channels * p.HW)
    if p.rmode == RMODE_HALF:
        roipool_kernels.narrow_f16(thread_scratch, nc * p.HW, <uint16_t *>grad)
    else:
        roipool_kernels.narrow_bf16(thread_scratch, nc * p.HW, <uint16_t *>grad)


# The backward's ROI scan reads the batch column only (SCAN_BATCH).
cdef Rule _BATCH_ONLY = Rule(1.0, 1.0, False, RMODE_NONE, 0, 0)


cdef Py_ssize_t _backward(BackwardPlan *p, const floating[:, ::1] rois,
                          int n_threads) noexcept nogil:
    """p holds the arrays (_backward_arrays); the rest is set here. float16/
    bfloat16 planes are added in a per-thread float32 scratch and converted
    when done."""
    cdef Py_ssize_t R = rois.shape[0], N = p.N, C = p.C, HW = p.HW
    cdef Py_ssize_t status = NO_MEMORY, t, n_workers, B, tid = 0
    if _workspace_alloc(&p.ws, R, 1, N, True):
        status = _prepare(rois, &p.rule, SCAN_BATCH, &p.ws)
    if status != OK or N * C * HW == 0:
        _workspace_free(&p.ws)
        return status
    # One thread owns each block of (image, channel) planes and adds into it
    # in ascending ROI order: no atomics, bit-identical for any thread count.
    # Blocks fit in L2, and each ROI contributes one contiguous grad_out chunk.
    B = _block_size(C, HW, sizeof(floating), True)
    # Smaller blocks until every thread has about two (a block is the unit
    # of work: ROIs cannot be split without atomics).
    while B > 1 and N * ((C + B - 1) // B) < 2 * n_threads:
        B = (B + 1) // 2
    p.block_channels, p.n_blocks = B, (C + B - 1) // B
    n_workers = max(1, min(<Py_ssize_t>n_threads, N * p.n_blocks))
    # argmax is range-checked here, as it is read, instead of in a separate
    # pass over it (it is as large as grad_out): one flag per task, no race.
    p.bad = <unsigned char *>calloc(N * p.n_blocks, 1)
    p.scratch = NULL
    p.thread_floats = B * (HW + p.roi_bins) if p.rmode != RMODE_NONE else 0
    if p.rmode != RMODE_NONE:
        p.scratch = <float *>malloc(n_workers * p.thread_floats * sizeof(float))
    status = OK
    if p.bad == NULL or (p.rmode != RMODE_NONE and p.scratch == NULL):
        status = NO_MEMORY
    else:
        with parallel(num_threads=n_workers):
            tid = omp_get_thread_num()
            for t in prange(N * p.n_blocks, schedule='dynamic'):
                _backward_task(p, t, p.scratch + tid * p.thread_floats if p.scratch else NULL,
                               <floating>0)
        for t in range(N * p.n_blocks):
            if p.bad[t]:
                status = BAD_ARGMAX
                break
    _workspace_free(&p.ws)
    free(p.bad)
    free(p.scratch)
    return status


def backward(cnp.ndarray grad_out not None, rois, cnp.ndarray argmax not None,
             cnp.ndarray grad not None, int rmode, int n_threads):
    """Scatter grad_out [R, C, PH, PW] through argmax into grad [N, C, H, W]
    (all C-contiguous; grad_out and grad in the storage type, float16/
    bfloat16 included, native byte order; argmax int32). Returns OK,
    NO_MEMORY, BAD_ARGMAX (a value outside [-1, H*W), skipped; grad is then
    partly written) or a bad ROI row code. With N * C * H * W == 0 nothing
    is scattered and argmax is not read."""
    cdef BackwardPlan p
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(grad_out)
    cdef const cnp.npy_intp *grad_shape = cnp.PyArray_DIMS(grad)
    p.grad_out = <const char *>cnp.PyArray_DATA(grad_out)
    p.argmax = <const int32_t *>cnp.PyArray_DATA(argmax) if cnp.PyArray_SIZE(grad_out) else NULL
    p.grad = <char *>cnp.PyArray_DATA(grad)
    p.itemsize, p.rmode = cnp.PyArray_ITEMSIZE(grad_out), rmode
    p.N, p.C = grad_shape[0], shape[1]
    p.rule = _BATCH_ONLY.c
    p.rule.N = p.N
    p.HW, p.roi_bins = grad_shape[2] * grad_shape[3], shape[2] * shape[3]
    if p.itemsize == 8:
        return _backward_call(<double>0, &p, rois, n_threads)
    return _backward_call(<float>0, &p, rois, n_threads)


cdef Py_ssize_t _backward_call(floating kind, BackwardPlan *p, rois, int n_threads):
    """A typed view of rois for _backward[floating] (`kind`, the compute
    type, only selects the type)."""
    cdef const floating[:, ::1] r = rois
    cdef Py_ssize_t status
    with nogil:
        status = _backward(p, r, n_threads)
    return status


def int32_range(const int32_t[::1] a, int n_threads):
    """(min, max) of a non-empty int32 array, in parallel."""
    cdef Py_ssize_t n = a.shape[0]
    cdef Py_ssize_t n_parts = max(1, min(<Py_ssize_t>n_threads, n // 65536 + 1))
    cdef Py_ssize_t t, i, lo, hi
    cdef int32_t mn[256]
    cdef int32_t mx[256]
    cdef int32_t vmin, vmax, v
    n_parts = min(n_parts, 256)
    if n == 0:
        return 0, 0
    for t in prange(n_parts, nogil=True, schedule='static', num_threads=n_parts):
        lo = n * t // n_parts
        hi = n * (t + 1) // n_parts
        vmin = a[lo]
        vmax = a[lo]
        for i in range(lo, hi):
            v = a[i]
            vmin = v if v < vmin else vmin
            vmax = v if v > vmax else vmax
        mn[t] = vmin
        mx[t] = vmax
    vmin, vmax = mn[0], mx[0]
    for t in range(1, n_parts):
        vmin = min(vmin, mn[t])
        vmax = max(vmax, mx[t])
    return vmin, vmax


def bin_bounds(rois, Rule rule not None, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, geom):
    """The kernel's own ROI geometry under `rule` on an [N, *, H, W] map into
    geom [R, 1 + 2 PH + 2 PW] (intp): batch index, hstart, hend, wstart, wend.
    For benchmarks (visit counts) and diagnostics; returns Status.OK or a bad
    row code like forward()."""
    cdef Py_ssize_t[:, ::1] g = geom
    cdef Py_ssize_t R = g.shape[0], status = NO_MEMORY
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Workspace ws
    cdef RoiRule r = rule.c
    r.N, r.H, r.W = N, H, W
    if _workspace_alloc(&ws, R, _geom_len(r.PH, r.PW), N, True):
        if rois.dtype.itemsize == 4:
            r32 = rois
            status = _prepare(r32, &r, SCAN_GEOMETRY, &ws)
        else:
            r64 = rois
            status = _prepare(r64, &r, SCAN_GEOMETRY, &ws)
        if status == OK and R:
            memcpy(&g[0, 0], ws.geom, R * ws.row_len * sizeof(Py_ssize_t))
    _workspace_free(&ws)
    return status


# RoIAlign: its own rule, task function and backward on the machinery above.
include "_roi_align.pxi"

include "_runtime.pxi"
