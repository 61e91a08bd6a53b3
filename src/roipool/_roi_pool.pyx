# Compiled kernels of roipool.
#
# Everything here assumes what roipool/_validate.py checked: dtypes, ranks,
# C-contiguous rois/out/argmax/grad buffers, positive pooled sizes, a thread
# count >= 1.  The one scan that has to look at values (ROI rows, argmax
# range) reports the first offending row or the extremes as plain numbers;
# the Python layer turns them into exceptions.  No output is written before
# that scan has passed.

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, ceil, fabs, floor, isfinite, round, trunc
from libc.stdint cimport int32_t, int64_t, uint16_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from roipool._openmp cimport ROIPOOL_OPENMP, omp_get_max_threads, omp_get_thread_num, roipool_omp_pause

cnp.import_array()

cdef extern from "_simd.h" nogil:
    void roipool_roi_max_f32(const float *base, Py_ssize_t sH, Py_ssize_t sW,
                             Py_ssize_t W, const Py_ssize_t *g, Py_ssize_t PH,
                             Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t nc,
                             float init, float *res, int32_t *ires, int32_t *idx) noexcept
    void roipool_roi_max_f64(const double *base, Py_ssize_t sH, Py_ssize_t sW,
                             Py_ssize_t W, const Py_ssize_t *g, Py_ssize_t PH,
                             Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t nc,
                             double init, double *res, int32_t *ires, int64_t *idx) noexcept
    int roipool_isa_supported(int level) noexcept
    void roipool_transpose32(const void *src, Py_ssize_t nc, Py_ssize_t G,
                             Py_ssize_t ld, void *dst) noexcept
    void roipool_stream32(const void *src, Py_ssize_t n, void *dst) noexcept
    void roipool_transpose64(const void *src, Py_ssize_t nc, Py_ssize_t G,
                             Py_ssize_t ld, void *dst) noexcept
    void roipool_store_fence() noexcept
    int roipool_set_isa(int level) noexcept
    int roipool_get_isa() noexcept
    long roipool_l2_cache_bytes() noexcept
    float roipool_round_half(float x) noexcept
    float roipool_round_bf16(float x) noexcept
    void roipool_prefetch(const void *p) noexcept

# The one declaration of the kernels' status codes and rounding modes; the
# Python layer uses these names (roipool._status, roipool._validate).
cpdef enum Status:
    OK = -1
    NO_MEMORY = -2
    BAD_ARGMAX = -3    # backward: an argmax value outside [-1, H*W)

# A bad ROI row r comes back as r * ROW_CODES + its RowError.
cpdef enum:
    ROW_CODES = 8

cpdef enum RowError:
    BAD_BATCH_NONFINITE = 1
    BAD_BATCH_RANGE = 2
    BAD_COORD_NONFINITE = 3
    BAD_COORD_RANGE = 4
    BAD_SIZE_RANGE = 5

# Rounding of every intermediate to the storage type (SEMANTICS, "Reduced
# precision"): none (float32/float64), float16 or bfloat16.
cpdef enum Rounding:
    RMODE_NONE = 0
    RMODE_HALF = 1
    RMODE_BF16 = 2

cdef extern from "float.h":
    const float FLT_MAX
# Channel blocks are sized so one gathered block of the map stays in L2;
# roipool._config sets this from the L2 size at import.
cdef Py_ssize_t _cache_budget = 256 * 1024
cdef Py_ssize_t _max_block = 64
# Outputs larger than this are written with non-temporal stores.
cdef Py_ssize_t _stream_bytes = 8 * 1024 * 1024


cdef inline floating _rt(floating x, int rmode) noexcept nogil:
    if floating is float:
        if rmode == RMODE_HALF:
            return roipool_round_half(x)
        if rmode == RMODE_BF16:
            return roipool_round_bf16(x)
    return x


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


cdef enum:
    # how much _prepare does
    SCAN_BATCH = 0     # batch column, finite coordinates (backward)
    SCAN_SCALED = 1    # + scaled coordinates fit a C int (forward, empty output)
    SCAN_GEOMETRY = 2  # + bin bounds and the batch grouping (forward)


cdef Py_ssize_t _prepare(const floating[:, ::1] rois, double scale_t,
                         double scale_d, bint tv, int rmode, int scan,
                         Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t *geom,
                         Py_ssize_t *order, Py_ssize_t *offsets) noexcept nogil:
    """Per ROI: batch index and clipped bin bounds; ROIs grouped by batch.

    geom row r: [b, hstart[PH], hend[PH], wstart[PW], wend[PW]] (just [b]
    below SCAN_GEOMETRY). Returns OK or the first bad row as r * ROW_CODES + RowError.
    """
    cdef Py_ssize_t R = rois.shape[0]
    cdef Py_ssize_t G = 1 + 2 * PH + 2 * PW if scan == SCAN_GEOMETRY else 1
    cdef Py_ssize_t r, j, k
    cdef floating x, scale = <floating>scale_t, bin_h, bin_w, size_h, size_w
    cdef floating fph = _rt(<floating>PH, rmode), fpw = _rt(<floating>PW, rmode)
    cdef double bt, p
    cdef int64_t q[4]
    cdef int64_t roi_h, roi_w
    cdef Py_ssize_t *g

    for r in range(R):
        x = rois[r, 0]
        if not isfinite(x):
            return r * ROW_CODES + BAD_BATCH_NONFINITE
        bt = trunc(<double>x)  # MXNet: C cast of the batch column to int
        if bt < 0 or bt >= N:
            return r * ROW_CODES + BAD_BATCH_RANGE
        g = geom + r * G
        g[0] = <Py_ssize_t>bt
        for j in range(4):
            x = rois[r, j + 1]
            if not isfinite(x):
                return r * ROW_CODES + BAD_COORD_NONFINITE
            if scan == SCAN_BATCH:
                continue
            if tv:
                # torchvision: coordinate times the double spatial_scale
                p = <double>x * scale_d
            else:
                p = _rt(x * scale, rmode)
            if not (fabs(p) < 2147483648.0):
                return r * ROW_CODES + BAD_COORD_RANGE
            q[j] = <int64_t>round(p)  # C round(): halves away from zero
        if scan != SCAN_GEOMETRY:
            continue
        # force malformed ROIs to be 1 x 1 (MXNet)
        roi_w = q[2] - q[0] + 1
        roi_h = q[3] - q[1] + 1
        if roi_w < 1:
            roi_w = 1
        if roi_h < 1:
            roi_h = 1
        size_h = _rt(<floating>roi_h, rmode)
        size_w = _rt(<floating>roi_w, rmode)
        if not (isfinite(size_h) and isfinite(size_w) and isfinite(fph) and isfinite(fpw)):
            return r * ROW_CODES + BAD_SIZE_RANGE
        bin_h = _rt(size_h / fph, rmode)
        bin_w = _rt(size_w / fpw, rmode)
        for k in range(PH):
            g[1 + k] = _clip(_to_i64(floor(_rt(_rt(<floating>k, rmode) * bin_h, rmode))) + q[1], H)
            g[1 + PH + k] = _clip(_to_i64(ceil(_rt(_rt(<floating>(k + 1), rmode) * bin_h, rmode))) + q[1], H)
        for k in range(PW):
            g[1 + 2 * PH + k] = _clip(_to_i64(floor(_rt(_rt(<floating>k, rmode) * bin_w, rmode))) + q[0], W)
            g[1 + 2 * PH + PW + k] = _clip(_to_i64(ceil(_rt(_rt(<floating>(k + 1), rmode) * bin_w, rmode))) + q[0], W)

    if offsets == NULL:
        return OK
    # Stable counting sort by batch: ROIs of one image are pooled together,
    # and backward adds in ascending ROI order (deterministic).
    for j in range(N + 1):
        offsets[j] = 0
    for r in range(R):
        offsets[geom[r * G] + 1] += 1
    for j in range(N):
        offsets[j + 1] += offsets[j]
    for r in range(R):
        k = geom[r * G]
        order[offsets[k]] = r
        offsets[k] += 1
    for j in range(N, 0, -1):
        offsets[j] = offsets[j - 1]
    offsets[0] = 0
    return OK


cdef inline Py_ssize_t _align64(Py_ssize_t n) noexcept nogil:
    return (n + 63) // 64 * 64


cdef Py_ssize_t _block_size(Py_ssize_t C, Py_ssize_t HW, Py_ssize_t itemsize,
                            bint gather) noexcept nogil:
    """Channels pooled together: a SIMD-friendly multiple of 8 whose gathered
    map block fits the cache budget; all of C when C is small."""
    cdef Py_ssize_t b = _max_block
    if gather:
        while b > 8 and b * HW * itemsize > _cache_budget:
            b -= 8
    return C if C <= b else b


cdef inline void _store(const void *src, Py_ssize_t isz, Py_ssize_t nc, Py_ssize_t k0,
                        Py_ssize_t k1, Py_ssize_t PHPW, Py_ssize_t C, Py_ssize_t r,
                        Py_ssize_t c0, bint cl, bint stream, void *stage,
                        char *dst) noexcept nogil:
    """Bins [k0, k1) of ROI r, channels [c0, c0 + nc), from the channel-minor
    scratch to out/argmax, channel-major ([R, C, PH, PW] memory) or
    channels-last ([R, PH, PW, C] memory, the scratch layout itself)."""
    cdef Py_ssize_t k, G = k1 - k0
    cdef const char *s = <const char *>src
    if cl:
        if nc == C:
            memcpy(dst + (r * PHPW + k0) * C * isz, s, G * nc * isz)
        else:
            for k in range(G):
                memcpy(dst + ((r * PHPW + k0 + k) * C + c0) * isz, s + k * nc * isz, nc * isz)
        return
    dst += ((r * C + c0) * PHPW + k0) * isz
    if isz == 8:
        roipool_transpose64(src, nc, G, PHPW, dst)
    elif stream and G == PHPW:
        # the ROI's block of out is contiguous: stage it, stream it
        roipool_transpose32(src, nc, G, PHPW, stage)
        roipool_stream32(stage, nc * PHPW, dst)
    else:
        roipool_transpose32(src, nc, G, PHPW, dst)


cdef void _pool_task(const floating *data, Py_ssize_t sN, Py_ssize_t sC,
                     Py_ssize_t sH, Py_ssize_t sW, bint gather, Py_ssize_t C,
                     Py_ssize_t H, Py_ssize_t W, Py_ssize_t PH, Py_ssize_t PW,
                     const Py_ssize_t *geom, const Py_ssize_t *order,
                     Py_ssize_t n, Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t i0,
                     Py_ssize_t i1, floating init, Py_ssize_t group, floating *block,
                     floating *res, int32_t *ires, void *idx_scratch, void *stage,
                     bint stream, floating *out, bint out_cl, int32_t *argmax,
                     bint am_cl) noexcept nogil:
    """Pool channels [c0, c0 + nc) of image n for the ROIs order[i0:i1]."""
    cdef Py_ssize_t G = 1 + 2 * PH + 2 * PW, PHPW = PH * PW
    cdef Py_ssize_t i, r, j, h, w, k0, k1, bh, bw
    cdef const floating *src = data + n * sN + c0 * sC
    cdef const floating *base
    cdef const Py_ssize_t *g
    if gather:
        # Copy the block pixel-major once, so every bin visit reads one short
        # contiguous channel vector from a block that stays in L2.
        if sC == 1:
            for h in range(H):
                for w in range(W):
                    memcpy(block + (h * W + w) * nc, src + h * sH + w * sW, nc * sizeof(floating))
        else:
            for h in range(H):
                for j in range(nc):
                    for w in range(W):
                        block[(h * W + w) * nc + j] = src[j * sC + h * sH + w * sW]
        base, bh, bw = block, W * nc, nc
    else:
        base, bh, bw = src, sH, sW
    # Bins go to a channel-minor scratch (the SIMD layout) in groups of
    # `group` bins, then to out/argmax with sequential writes: a strided
    # write per value costs a cache line each, more than the max itself.
    for i in range(i0, i1):
        r = order[i]
        g = geom + r * G
        k0 = 0
        while k0 < PHPW:
            k1 = min(k0 + group, PHPW)
            if floating is float:
                roipool_roi_max_f32(base, bh, bw, W, g + 1, PH, PW, k0, k1, nc, init, res,
                                    ires, <int32_t *>idx_scratch)
            else:
                roipool_roi_max_f64(base, bh, bw, W, g + 1, PH, PW, k0, k1, nc, init, res,
                                    ires, <int64_t *>idx_scratch)
            _store(res, sizeof(floating), nc, k0, k1, PHPW, C, r, c0, out_cl, stream,
                   stage, <char *>out)
            if argmax != NULL:  # callers that only want out skip half the writes
                _store(ires, 4, nc, k0, k1, PHPW, C, r, c0, am_cl, stream, stage,
                       <char *>argmax)
            k0 = k1
    if stream:
        roipool_store_fence()


cdef inline void _run_task(Py_ssize_t t, const floating *data, Py_ssize_t sN,
                           Py_ssize_t sC, Py_ssize_t sH, Py_ssize_t sW, bint gather,
                           Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t PH,
                           Py_ssize_t PW, const Py_ssize_t *geom, const Py_ssize_t *order,
                           const Py_ssize_t *tasks, Py_ssize_t B, floating init,
                           Py_ssize_t group, Py_ssize_t s_res, Py_ssize_t s_ires,
                           Py_ssize_t s_idx, Py_ssize_t s_stage, bint stream, char *mine,
                           floating *out, bint out_cl, int32_t *argmax,
                           bint am_cl) noexcept nogil:
    """Task t of the task table, with this thread's scratch `mine`:
    res | ires | idx | stage | gathered block."""
    cdef Py_ssize_t n = tasks[4 * t], c0 = tasks[4 * t + 1] * B
    _pool_task(data, sN, sC, sH, sW, gather, C, H, W, PH, PW, geom, order, n, c0,
               min(B, C - c0), tasks[4 * t + 2], tasks[4 * t + 3], init, group,
               <floating *>(mine + s_res + s_ires + s_idx + s_stage),
               <floating *>mine, <int32_t *>(mine + s_res),
               <void *>(mine + s_res + s_ires), <void *>(mine + s_res + s_ires + s_idx),
               stream, out, out_cl, argmax, am_cl)


cdef Py_ssize_t _forward(const floating[:, :, :, :] data, const floating[:, ::1] rois,
                         double scale_t, double scale_d, bint tv, int rmode,
                         Py_ssize_t PH, Py_ssize_t PW, floating *out, bint out_cl,
                         int32_t *argmax, bint am_cl, int n_threads) noexcept nogil:
    cdef Py_ssize_t N = data.shape[0], C = data.shape[1], H = data.shape[2], W = data.shape[3]
    cdef Py_ssize_t R = rois.shape[0], G = 1 + 2 * PH + 2 * PW
    cdef Py_ssize_t isz = sizeof(floating)
    cdef Py_ssize_t sN = data.strides[0] // isz, sC = data.strides[1] // isz
    cdef Py_ssize_t sH = data.strides[2] // isz, sW = data.strides[3] // isz
    # Channels-last data is read in place when one block covers all channels.
    cdef bint gather = not (C == 1 or (sC == 1 and C <= _max_block))
    cdef Py_ssize_t B, nblocks
    cdef Py_ssize_t status, n, cb, k, kk, cnt, t, ntasks, nt, per_thread, tid, group
    cdef Py_ssize_t s_res, s_ires, s_idx, s_stage
    cdef bint stream
    cdef Py_ssize_t *geom = NULL
    cdef Py_ssize_t *order = NULL
    cdef Py_ssize_t *offsets = NULL
    cdef Py_ssize_t *tasks = NULL
    cdef char *scratch = NULL
    cdef char *mine
    cdef floating init = -FLT_MAX if rmode == RMODE_NONE else -INFINITY

    if out == NULL or C == 0:  # empty output: only the ROI checks
        geom = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
        status = NO_MEMORY if geom == NULL else _prepare(
            rois, scale_t, scale_d, tv, rmode, SCAN_SCALED, N, H, W, PH, PW, geom, NULL, NULL)
        free(geom)
        return status
    geom = <Py_ssize_t *>malloc(max(R * G, 1) * sizeof(Py_ssize_t))
    order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
    if geom == NULL or order == NULL or offsets == NULL:
        status = NO_MEMORY
    else:
        status = _prepare(rois, scale_t, scale_d, tv, rmode, SCAN_GEOMETRY, N, H, W, PH, PW,
                          geom, order, offsets)
    if status != OK or R == 0:
        free(geom); free(order); free(offsets)
        return status

    # C >= 1 from here on: the block size is too.
    B = _block_size(C, H * W, isz, gather)
    nblocks = (C + B - 1) // B
    # Tasks: (image, channel block, slice of that image's ROIs). Enough of them
    # that dynamic scheduling evens out ROIs whose areas differ 100x.
    kk = (4 * n_threads + N * nblocks - 1) // (N * nblocks)
    tasks = <Py_ssize_t *>malloc(N * nblocks * kk * 4 * sizeof(Py_ssize_t))
    if tasks == NULL:
        free(geom); free(order); free(offsets)
        return NO_MEMORY
    ntasks = 0
    for n in range(N):
        cnt = offsets[n + 1] - offsets[n]
        if cnt == 0:
            continue
        k = min(kk, cnt)
        for cb in range(nblocks):
            for t in range(k):
                tasks[4 * ntasks] = n
                tasks[4 * ntasks + 1] = cb
                tasks[4 * ntasks + 2] = offsets[n] + cnt * t // k
                tasks[4 * ntasks + 3] = offsets[n] + cnt * (t + 1) // k
                ntasks += 1
    nt = max(1, min(<Py_ssize_t>n_threads, ntasks))

    # Per-thread scratch: the gathered block, best values, argmax (int32 and
    # the value-width lane), each rounded up to 64 bytes to avoid false sharing.
    # All bins of a ROI in one group when that fits 64 KiB of scratch.
    group = PH * PW if PH * PW * B * isz <= 65536 else max(1, 8192 // B)
    # Output beyond the caches is streamed to memory (see roipool_stream32).
    stream = R * C * PH * PW * isz > _stream_bytes
    s_res = _align64(group * B * isz)
    s_ires = _align64(group * B * 4)
    s_idx = _align64(B * 8)
    s_stage = _align64(group * B * 4)
    per_thread = s_res + s_ires + s_idx + s_stage + _align64(H * W * B * isz if gather else 0) + 64
    scratch = <char *>malloc(nt * per_thread + 64)
    if scratch == NULL:
        free(geom); free(order); free(offsets); free(tasks)
        return NO_MEMORY

    if nt == 1:
        # one task (small calls): no parallel region, whose start-up would
        # cost more than the work
        for t in range(ntasks):
            _run_task(t, &data[0, 0, 0, 0], sN, sC, sH, sW, gather, C, H, W, PH, PW,
                      geom, order, tasks, B, init, group, s_res, s_ires, s_idx, s_stage,
                      stream, <char *>((<size_t>scratch + 63) // 64 * 64),
                      out, out_cl, argmax, am_cl)
    else:
        with parallel(num_threads=nt):
            tid = omp_get_thread_num()
            mine = <char *>((<size_t>scratch + 63) // 64 * 64) + tid * per_thread
            for t in prange(ntasks, schedule='dynamic'):
                _run_task(t, &data[0, 0, 0, 0], sN, sC, sH, sW, gather, C, H, W, PH, PW,
                          geom, order, tasks, B, init, group, s_res, s_ires, s_idx, s_stage,
                          stream, mine, out, out_cl, argmax, am_cl)
    free(geom); free(order); free(offsets); free(tasks); free(scratch)
    return OK


def forward(data, rois, double scale_t, double scale_d, bint tv, int rmode,
            Py_ssize_t PH, Py_ssize_t PW, cnp.ndarray out not None, bint out_cl,
            cnp.ndarray argmax, bint am_cl, int n_threads):
    """Pool; returns Status.OK, Status.NO_MEMORY or a bad row as
    r * ROW_CODES + RowError.

    data: float32/float64 [N, C, H, W], any strides; rois C-contiguous in
    data's dtype; out/argmax: [R, C, PH, PW] whose memory is C-contiguous
    [R, C, PH, PW] or, with out_cl/am_cl, [R, PH, PW, C]; argmax may be None.
    """
    if cnp.PyArray_SIZE(out) == 0:  # nothing to write; the ROI scan still runs
        out = argmax = None
    if data.dtype.itemsize == 4:
        return _forward_call(<float>0, data, rois, scale_t, scale_d, tv, rmode, PH, PW,
                             out, out_cl, argmax, am_cl, n_threads)
    return _forward_call(<double>0, data, rois, scale_t, scale_d, tv, rmode, PH, PW,
                         out, out_cl, argmax, am_cl, n_threads)


cdef Py_ssize_t _forward_call(floating kind, data, rois, double scale_t, double scale_d,
                              bint tv, int rmode, Py_ssize_t PH, Py_ssize_t PW,
                              cnp.ndarray out, bint out_cl, cnp.ndarray argmax, bint am_cl,
                              int n_threads):
    """Typed views for _forward[floating] (`kind` only selects the type)."""
    cdef const floating[:, :, :, :] d = data
    cdef const floating[:, ::1] r = rois
    # out and argmax are contiguous blocks (checked or allocated so by the
    # Python layer): their data pointers are all the kernel needs, and taking
    # them costs far less than a typed view, which matters on small calls.
    cdef floating *o_ptr = NULL if out is None else <floating *>cnp.PyArray_DATA(out)
    cdef int32_t *am_ptr = NULL if argmax is None else <int32_t *>cnp.PyArray_DATA(argmax)
    cdef Py_ssize_t status
    with nogil:
        status = _forward(d, r, scale_t, scale_d, tv, rmode, PH, PW, o_ptr, out_cl,
                          am_ptr, am_cl, n_threads)
    return status


cdef inline bint _scatter(floating *plane, const floating *go, const int32_t *am,
                          const floating *go_next, const int32_t *am_next,
                          Py_ssize_t nc, Py_ssize_t PHPW, Py_ssize_t HW,
                          int rmode) noexcept nogil:
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
            k = 0
            while k < PHPW:
                roipool_prefetch(go_next + c * PHPW + k)
                k += 64 // sizeof(floating)
            k = 0
            while k < PHPW:
                roipool_prefetch(am_next + c * PHPW + k)
                k += 16
        for k in range(PHPW):
            a = am[c * PHPW + k]
            if <size_t>a < <size_t>HW:  # 0 <= a < H*W
                # float16/bfloat16: every add is rounded, as in half_t
                plane[c * HW + a] = _rt(plane[c * HW + a] + go[c * PHPW + k], rmode)
            elif a != -1:
                bad = True
    return bad


cdef Py_ssize_t _backward(const floating[:, :, :, ::1] grad_out,
                          const floating[:, ::1] rois,
                          const int32_t[:, :, :, ::1] argmax, Py_ssize_t N,
                          Py_ssize_t H, Py_ssize_t W, floating[:, :, :, ::1] grad,
                          int rmode, int n_threads) noexcept nogil:
    cdef Py_ssize_t R = grad_out.shape[0], C = grad_out.shape[1]
    cdef Py_ssize_t PHPW = grad_out.shape[2] * grad_out.shape[3], HW = H * W
    cdef Py_ssize_t status, t, n, c0, nc, i, r, nt, B, nblocks
    cdef unsigned char *bad = NULL
    cdef Py_ssize_t *geom = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
    cdef floating *plane
    cdef const floating *go
    cdef const int32_t *am
    cdef const floating *go_next
    cdef const int32_t *am_next
    if geom == NULL or order == NULL or offsets == NULL:
        status = NO_MEMORY
    else:
        # batch indices only (PH = PW = 0: geometry rows hold just b)
        status = _prepare(rois, 1.0, 1.0, False, RMODE_NONE, SCAN_BATCH, N, H, W, 0, 0,
                          geom, order, offsets)
    if status != OK or N * C * HW == 0:
        free(geom); free(order); free(offsets)
        return status
    # One thread owns each block of (image, channel) planes and adds into it
    # in ascending ROI order: no atomics, bit-identical for any thread count.
    # Blocks fit in L2, and each ROI contributes one contiguous grad_out chunk.
    B = _block_size(C, HW, sizeof(floating), True)
    # Smaller blocks until every thread has about two (a block is the unit
    # of work: ROIs cannot be split without atomics).
    while B > 1 and N * ((C + B - 1) // B) < 2 * n_threads:
        B = (B + 1) // 2
    nblocks = (C + B - 1) // B
    nt = max(1, min(<Py_ssize_t>n_threads, N * nblocks))
    # argmax is range-checked here, as it is read, instead of in a separate
    # pass over it (it is as large as grad_out): one flag per task, no race.
    bad = <unsigned char *>calloc(N * nblocks, 1)
    if bad == NULL:
        free(geom); free(order); free(offsets)
        return NO_MEMORY
    for t in prange(N * nblocks, nogil=True, schedule='dynamic', num_threads=nt):
        n = t // nblocks
        c0 = (t % nblocks) * B
        nc = min(B, C - c0)
        plane = &grad[n, c0, 0, 0]
        memset(plane, 0, nc * HW * sizeof(floating))
        for i in range(offsets[n], offsets[n + 1]):
            r = order[i]
            go = &grad_out[r, c0, 0, 0]
            am = &argmax[r, c0, 0, 0]
            go_next = NULL
            am_next = NULL
            if i + 1 < offsets[n + 1]:
                go_next = &grad_out[order[i + 1], c0, 0, 0]
                am_next = &argmax[order[i + 1], c0, 0, 0]
            # A constant rmode lets the compiler drop the rounding branches
            # from the inlined loop in the common case (~15% faster).
            if rmode == RMODE_NONE:
                bad[t] |= _scatter(plane, go, am, go_next, am_next, nc, PHPW, HW, RMODE_NONE)
            else:
                bad[t] |= _scatter(plane, go, am, go_next, am_next, nc, PHPW, HW, rmode)
    status = OK
    for t in range(N * nblocks):
        if bad[t]:
            status = BAD_ARGMAX
            break
    free(geom); free(order); free(offsets); free(bad)
    return status


def backward(grad_out, rois, argmax, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
             grad, int rmode, int n_threads):
    """Scatter grad_out through argmax into grad (all C-contiguous). Returns
    OK, NO_MEMORY, BAD_ARGMAX (a value outside [-1, H*W), skipped; grad is
    then partly written) or a bad ROI row code. With N * C * H * W == 0
    nothing is scattered and argmax is not read."""
    if grad_out.dtype.itemsize == 4:
        return _backward_call(<float>0, grad_out, rois, argmax, N, H, W, grad, rmode, n_threads)
    return _backward_call(<double>0, grad_out, rois, argmax, N, H, W, grad, rmode, n_threads)


cdef Py_ssize_t _backward_call(floating kind, grad_out, rois, argmax, Py_ssize_t N,
                               Py_ssize_t H, Py_ssize_t W, grad, int rmode, int n_threads):
    """Typed views for _backward[floating] (`kind` only selects the type)."""
    cdef const floating[:, :, :, ::1] g = grad_out
    cdef const floating[:, ::1] r = rois
    cdef floating[:, :, :, ::1] o = grad
    cdef const int32_t[:, :, :, ::1] am = argmax
    cdef Py_ssize_t status
    with nogil:
        status = _backward(g, r, am, N, H, W, o, rmode, n_threads)
    return status


def int32_range(const int32_t[::1] a, int n_threads):
    """(min, max) of a non-empty int32 array, in parallel."""
    cdef Py_ssize_t n = a.shape[0], nt = max(1, min(<Py_ssize_t>n_threads, n // 65536 + 1))
    cdef Py_ssize_t t, i, lo, hi
    cdef int32_t mn[256]
    cdef int32_t mx[256]
    cdef int32_t vmin, vmax, v
    nt = min(nt, 256)
    if n == 0:
        return 0, 0
    for t in prange(nt, nogil=True, schedule='static', num_threads=nt):
        lo = n * t // nt
        hi = n * (t + 1) // nt
        vmin = a[lo]
        vmax = a[lo]
        for i in range(lo, hi):
            v = a[i]
            vmin = v if v < vmin else vmin
            vmax = v if v > vmax else vmax
        mn[t] = vmin
        mx[t] = vmax
    vmin, vmax = mn[0], mx[0]
    for t in range(1, nt):
        vmin = min(vmin, mn[t])
        vmax = max(vmax, mx[t])
    return vmin, vmax


def bin_bounds(rois, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, double scale_t,
               double scale_d, bint tv, int rmode, Py_ssize_t PH, Py_ssize_t PW, geom):
    """The kernel's own ROI geometry into geom [R, 1 + 2 PH + 2 PW] (intp):
    batch index, hstart, hend, wstart, wend. For benchmarks (visit counts)
    and diagnostics; returns OK or a bad row code like forward()."""
    cdef Py_ssize_t[:, ::1] g = geom
    cdef Py_ssize_t R = g.shape[0], status
    cdef Py_ssize_t *order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Py_ssize_t *gp = &g[0, 0] if R else NULL
    if order == NULL or offsets == NULL:
        status = NO_MEMORY
    elif rois.dtype.itemsize == 4:
        r32 = rois
        status = _prepare(r32, scale_t, scale_d, tv, rmode, SCAN_GEOMETRY, N, H, W, PH, PW,
                          gp, order, offsets)
    else:
        r64 = rois
        status = _prepare(r64, scale_t, scale_d, tv, rmode, SCAN_GEOMETRY, N, H, W, PH, PW,
                          gp, order, offsets)
    free(order)
    free(offsets)
    return status


cdef extern from *:
    """
    #ifndef ROIPOOL_BUILD_FLAGS
    #define ROIPOOL_BUILD_FLAGS "unknown"
    #endif
    #if defined(__clang__)
    #define ROIPOOL_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define ROIPOOL_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define ROIPOOL_COMPILER "msvc"
    #else
    #define ROIPOOL_COMPILER "unknown"
    #endif
    #ifdef _OPENMP
    #define ROIPOOL_OPENMP_VERSION _OPENMP
    #else
    #define ROIPOOL_OPENMP_VERSION 0
    #endif
    """
    const char *ROIPOOL_BUILD_FLAGS
    const char *ROIPOOL_COMPILER
    int ROIPOOL_OPENMP_VERSION


def build_info():
    """Compiler, flags and OpenMP version (yyyymm, 0 without) of this build."""
    return {
        "compiler": ROIPOOL_COMPILER.decode(),
        "flags": ROIPOOL_BUILD_FLAGS.decode(),
        "openmp_version": ROIPOOL_OPENMP_VERSION,
    }


def omp_max_threads():
    """omp_get_max_threads() for the calling thread (1 without OpenMP): it
    honours OMP_NUM_THREADS and threadpoolctl limits."""
    return omp_get_max_threads()


def omp_pause():
    """Free the calling thread's OpenMP worker pool (GNU libgomp; the next
    parallel region starts a new one). Runs before os.fork(): see __init__.py."""
    return roipool_omp_pause()


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(ROIPOOL_OPENMP)


def isa_supported(int level):
    return bool(roipool_isa_supported(level))


def get_isa():
    """The SIMD level in use (0 baseline, 1 AVX2, 2 AVX-512)."""
    return roipool_get_isa()


def set_isa(int level):
    """Select the SIMD path (0 baseline, 1 AVX2, 2 AVX-512), falling back to
    the best supported one below it; returns the level in use."""
    return roipool_set_isa(level)


def l2_cache_bytes():
    """L2 cache size the C library reports (0 when unknown)."""
    return roipool_l2_cache_bytes()


def _set_tuning(Py_ssize_t cache_budget=-1, Py_ssize_t max_block=-1,
                Py_ssize_t stream_bytes=-1):
    """Tuning knobs (set at import, and by benchmarks and tests): bytes of a
    gathered block, max channels per block, output size above which stores
    are streamed; -1 keeps a value. Not for use while calls are running.
    Returns the values in effect."""
    global _cache_budget, _max_block, _stream_bytes
    if cache_budget >= 0:
        _cache_budget = cache_budget
    if max_block >= 0:
        _max_block = max(1, max_block)
    if stream_bytes >= 0:
        _stream_bytes = stream_bytes
    return _cache_budget, _max_block, _stream_bytes
