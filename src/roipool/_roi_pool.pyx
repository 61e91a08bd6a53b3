# Compiled kernels of roipool.
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
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from roipool._openmp cimport (ROIPOOL_OPENMP, omp_get_max_threads, omp_get_thread_num,
                              roipool_omp_pause)

cnp.import_array()

cdef extern from "simd/simd.h" nogil:
    ctypedef struct roipool_block_t:
        # element (h, w, c) at base[h * row_stride + w * col_stride + c]
        const void *base
        Py_ssize_t row_stride, col_stride
        Py_ssize_t W          # argmax of (h, w) is h * W + w
        Py_ssize_t channels
    # One table of kernels per ISA (simd/dispatch.h); every call goes
    # through the active one. res is in the storage type (uint16_t bits for
    # float16/bfloat16), init in the compute type.
    ctypedef struct roipool_kernels_t:
        const char *name
        void (*roi_max_f32)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            float init, float *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*roi_max_f64)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            double init, double *res, int32_t *ires, int64_t *idx) noexcept nogil
        void (*roi_max_f16)(const roipool_block_t *block, const Py_ssize_t *bounds,
                            Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                            float init, uint16_t *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*roi_max_bf16)(const roipool_block_t *block, const Py_ssize_t *bounds,
                             Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t k0, Py_ssize_t k1,
                             float init, uint16_t *res, int32_t *ires, int32_t *idx) noexcept nogil
        void (*transpose16)(const void *src, Py_ssize_t nc, Py_ssize_t nbins, Py_ssize_t ld,
                            void *dst) noexcept nogil
        void (*transpose32)(const void *src, Py_ssize_t nc, Py_ssize_t nbins, Py_ssize_t ld,
                            void *dst) noexcept nogil
        void (*stream32)(const void *src, Py_ssize_t n, void *dst) noexcept nogil
        # backward, float16/bfloat16 (simd/backward.inc.h)
        int (*widen_f16)(const uint16_t *src, Py_ssize_t n, float *dst) noexcept nogil
        int (*widen_bf16)(const uint16_t *src, Py_ssize_t n, float *dst) noexcept nogil
        int (*scatter_f16)(float *plane, const float *g, const int32_t *am, Py_ssize_t nc,
                           Py_ssize_t bins, Py_ssize_t HW, int g_nan) noexcept nogil
        int (*scatter_bf16)(float *plane, const float *g, const int32_t *am, Py_ssize_t nc,
                            Py_ssize_t bins, Py_ssize_t HW, int g_nan) noexcept nogil
        void (*narrow_f16)(const float *src, Py_ssize_t n, uint16_t *dst) noexcept nogil
        void (*narrow_bf16)(const float *src, Py_ssize_t n, uint16_t *dst) noexcept nogil
    const roipool_kernels_t *roipool_kernels
    void roipool_transpose64(const void *src, Py_ssize_t nc, Py_ssize_t nbins,
                             Py_ssize_t ld, void *dst) noexcept
    void roipool_store_fence() noexcept
    int roipool_isa_supported(int level) noexcept
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

# Rounding of every intermediate to the storage type T (docs/semantics.md,
# "Reduced precision"): none (float32/float64), float16 or bfloat16.
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


cdef inline floating _as_storage(floating x, int rmode) noexcept nogil:
    """x rounded to the storage type T (docs/semantics.md, "Reduced
    precision"): float16/bfloat16 arithmetic rounds every intermediate."""
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


# How ROI rows become bins (docs/semantics.md, "The rule"): what one call
# gives _prepare.
ctypedef struct RoiRule:
    double scale_t        # spatial_scale as MXNet holds it (a value of T)
    double scale_d        # spatial_scale as given (compat="torchvision")
    bint torchvision      # coordinates times scale_d in double
    int rmode             # Rounding
    Py_ssize_t N, H, W    # batch size and the map the bins are clipped to
    Py_ssize_t PH, PW     # pooled grid


cdef enum:
    # how much _prepare does
    SCAN_BATCH = 0     # batch column, finite coordinates (backward)
    SCAN_SCALED = 1    # + scaled coordinates fit a C int (forward, empty output)
    SCAN_GEOMETRY = 2  # + bin bounds and the batch grouping (forward)


cdef inline Py_ssize_t _geom_len(Py_ssize_t PH, Py_ssize_t PW) noexcept nogil:
    """Length of one ROI's geometry row: b, hstart[PH], hend[PH], wstart[PW], wend[PW]."""
    return 1 + 2 * PH + 2 * PW


cdef Py_ssize_t _prepare(const floating[:, ::1] rois, const RoiRule *rule, int scan,
                         Py_ssize_t *geom, Py_ssize_t *order,
                         Py_ssize_t *offsets) noexcept nogil:
    """Per ROI: batch index and clipped bin bounds; ROIs grouped by batch.

    geom row r: _geom_len(PH, PW) values (just [b] below SCAN_GEOMETRY).
    order/offsets (may be NULL): the ROIs of image n are order[offsets[n]:
    offsets[n + 1]], ascending. Returns OK or the first bad row as
    r * ROW_CODES + RowError.
    """
    cdef Py_ssize_t R = rois.shape[0], N = rule.N, H = rule.H, W = rule.W
    cdef Py_ssize_t PH = rule.PH, PW = rule.PW
    cdef int rmode = rule.rmode
    cdef Py_ssize_t row_len = _geom_len(PH, PW) if scan == SCAN_GEOMETRY else 1
    cdef Py_ssize_t r, j, k
    cdef floating x, scale = <floating>rule.scale_t, bin_h, bin_w, size_h, size_w
    cdef floating pooled_h = _as_storage(<floating>PH, rmode)
    cdef floating pooled_w = _as_storage(<floating>PW, rmode)
    cdef double batch, scaled
    cdef int64_t corner[4]  # x1, y1, x2, y2 scaled and rounded
    cdef int64_t roi_h, roi_w
    cdef Py_ssize_t *row

    for r in range(R):
        x = rois[r, 0]
        if not isfinite(x):
            return r * ROW_CODES + BAD_BATCH_NONFINITE
        batch = trunc(<double>x)  # MXNet: C cast of the batch column to int
        if batch < 0 or batch >= N:
            return r * ROW_CODES + BAD_BATCH_RANGE
        row = geom + r * row_len
        row[0] = <Py_ssize_t>batch
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

    if offsets == NULL:
        return OK
    # Stable counting sort by batch: ROIs of one image are pooled together,
    # and backward adds in ascending ROI order (deterministic).
    for j in range(N + 1):
        offsets[j] = 0
    for r in range(R):
        offsets[geom[r * row_len] + 1] += 1
    for j in range(N):
        offsets[j + 1] += offsets[j]
    for r in range(R):
        k = geom[r * row_len]
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


# ---- forward: one plan per call, one task per (image, channel block, ROIs) --

ctypedef void (*transpose_fn)(const void *src, Py_ssize_t nc, Py_ssize_t nbins, Py_ssize_t ld,
                              void *dst) noexcept nogil

# Elements of a gathered block, copied as bits of their width.
ctypedef fused word:
    uint16_t
    uint32_t
    uint64_t

ctypedef struct Task:
    Py_ssize_t image       # n
    Py_ssize_t c0          # first channel of the block
    Py_ssize_t first, end  # the ROIs order[first:end], all of image n


ctypedef struct ForwardPlan:
    # the feature map, in its storage type (itemsize bytes; float16/bfloat16
    # as 16-bit patterns, rmode tells which): element (n, c, h, w) at element
    # n * stride_n + c * stride_c + h * stride_h + w * stride_w of data
    const char *data
    Py_ssize_t itemsize
    int rmode
    Py_ssize_t stride_n, stride_c, stride_h, stride_w
    Py_ssize_t C, H, W, PH, PW
    bint gather                # copy each channel block pixel-major first
    Py_ssize_t block_channels  # channels per task
    Py_ssize_t group_bins      # bins per SIMD call, results staged in scratch
    bint stream                # out is written with non-temporal stores
    # per ROI: _geom_len(PH, PW) values (see _prepare); order groups ROIs by image
    const Py_ssize_t *geom
    const Py_ssize_t *order
    const Task *tasks
    # outputs ([R, C, PH, PW] memory, or [R, PH, PW, C] when *_cl); argmax may be NULL
    char *out
    bint out_cl
    char *argmax
    bint argmax_cl
    # per-thread scratch: bytes of each part, laid out by _scratch_at
    Py_ssize_t res_bytes, ires_bytes, idx_bytes, stage_bytes, block_bytes, thread_bytes
    # RoIAlign's per-ROI sample tables (_roi_align.pxi); NULL for RoIPool
    const void *align


ctypedef struct Scratch:
    # one thread's part of the scratch allocation (see _plan_scratch)
    void *res       # best values of a group of bins, channel-minor (storage type)
    int32_t *ires   # their argmax
    void *idx       # value-width argmax lanes (the x86 double paths)
    void *stage     # a ROI's block of out, staged for streaming
    void *block     # the gathered channel block


cdef inline void _plan_scratch(ForwardPlan *p, Py_ssize_t itemsize) noexcept nogil:
    """Byte sizes of the per-thread scratch parts, each rounded up to 64
    bytes to avoid false sharing. All bins of a ROI go in one group when that
    fits 64 KiB of scratch."""
    cdef Py_ssize_t B = p.block_channels, n_bins = p.PH * p.PW
    p.group_bins = n_bins if n_bins * B * itemsize <= 65536 else max(1, 8192 // B)
    p.res_bytes = _align64(p.group_bins * B * itemsize)
    p.ires_bytes = _align64(p.group_bins * B * 4)
    p.idx_bytes = _align64(B * 8)
    p.stage_bytes = _align64(p.group_bins * B * 4)
    p.block_bytes = _align64(p.H * p.W * B * itemsize if p.gather else 0)
    p.thread_bytes = (p.res_bytes + p.ires_bytes + p.idx_bytes + p.stage_bytes
                      + p.block_bytes + 64)


cdef inline Scratch _scratch_at(const ForwardPlan *p, char *allocation,
                                Py_ssize_t thread) noexcept nogil:
    """Thread `thread`'s parts of a scratch allocation of n * thread_bytes + 64."""
    cdef Scratch s
    cdef char *at = <char *>((<size_t>allocation + 63) // 64 * 64) + thread * p.thread_bytes
    s.res = at
    at += p.res_bytes
    s.ires = <int32_t *>at
    at += p.ires_bytes
    s.idx = at
    at += p.idx_bytes
    s.stage = at
    at += p.stage_bytes
    s.block = at
    return s


cdef inline void _store(const ForwardPlan *p, const void *src, Py_ssize_t itemsize,
                        char *dst, bint cl, Py_ssize_t r, Py_ssize_t c0, Py_ssize_t nc,
                        Py_ssize_t k0, Py_ssize_t k1, void *stage) noexcept nogil:
    """Bins [k0, k1) of ROI r, channels [c0, c0 + nc), from the channel-minor
    scratch to out/argmax, channel-major ([R, C, PH, PW] memory) or
    channels-last ([R, PH, PW, C] memory, the scratch layout itself)."""
    cdef Py_ssize_t k, n_bins = k1 - k0, C = p.C, roi_bins = p.PH * p.PW
    cdef const char *s = <const char *>src
    if cl:
        if nc == C:
            memcpy(dst + (r * roi_bins + k0) * C * itemsize, s, n_bins * nc * itemsize)
        else:
            for k in range(n_bins):
                memcpy(dst + ((r * roi_bins + k0 + k) * C + c0) * itemsize,
                       s + k * nc * itemsize, nc * itemsize)
        return
    cdef transpose_fn transpose = roipool_kernels.transpose32
    cdef Py_ssize_t n_bytes = nc * roi_bins * itemsize
    dst += ((r * C + c0) * roi_bins + k0) * itemsize
    if itemsize == 8:
        roipool_transpose64(src, nc, n_bins, roi_bins, dst)
        return
    if itemsize == 2:
        transpose = roipool_kernels.transpose16
    if p.stream and n_bins == roi_bins:
        # the ROI's block of out is contiguous: stage it, stream it (in
        # 4-byte words; an odd count of 16-bit elements leaves one)
        transpose(src, nc, n_bins, roi_bins, stage)
        roipool_kernels.stream32(stage, n_bytes // 4, dst)
        if n_bytes % 4:
            memcpy(dst + n_bytes - 2, <const char *>stage + n_bytes - 2, 2)
    else:
        transpose(src, nc, n_bins, roi_bins, dst)


cdef inline void _gather_strided(const word *src, word *block, Py_ssize_t nc, Py_ssize_t H,
                                 Py_ssize_t W, Py_ssize_t stride_c, Py_ssize_t stride_h,
                                 Py_ssize_t stride_w) noexcept nogil:
    """Channels [0, nc) of src (element strides) to block pixel-major."""
    cdef Py_ssize_t h, j, w
    for h in range(H):
        for j in range(nc):
            for w in range(W):
                block[(h * W + w) * nc + j] = src[j * stride_c + h * stride_h + w * stride_w]


cdef void _gather(const ForwardPlan *p, const Task *task, const Scratch *s,
                  roipool_block_t *out_view) noexcept nogil:
    """The task's channel block as the kernels read it: gathered pixel-major
    into the thread's scratch (p.gather), or the map itself."""
    cdef Py_ssize_t H = p.H, W = p.W, c0 = task.c0, nc = min(p.block_channels, p.C - c0)
    cdef Py_ssize_t stride_c = p.stride_c, stride_h = p.stride_h, stride_w = p.stride_w
    cdef Py_ssize_t itemsize = p.itemsize, h, w
    cdef const char *src = p.data + (task.image * p.stride_n + c0 * stride_c) * itemsize
    cdef char *block = <char *>s.block
    cdef roipool_block_t view
    if p.gather:
        # Copy the block pixel-major once, so every bin visit reads one short
        # contiguous channel vector from a block that stays in L2.
        if stride_c == 1:
            for h in range(H):
                for w in range(W):
                    memcpy(block + (h * W + w) * nc * itemsize,
                           src + (h * stride_h + w * stride_w) * itemsize, nc * itemsize)
        elif stride_w == 1 and stride_h == W and stride_c == H * W:
            # contiguous planes ([nc, H * W]): their transpose, by SIMD tiles
            if itemsize == 2:
                roipool_kernels.transpose16(src, H * W, nc, nc, block)
            elif itemsize == 4:
                roipool_kernels.transpose32(src, H * W, nc, nc, block)
            else:
                roipool_transpose64(src, H * W, nc, nc, block)
        elif itemsize == 2:
            _gather_strided(<const uint16_t *>src, <uint16_t *>block, nc, H, W, stride_c,
                            stride_h, stride_w)
        elif itemsize == 4:
            _gather_strided(<const uint32_t *>src, <uint32_t *>block, nc, H, W, stride_c,
                            stride_h, stride_w)
        else:
            _gather_strided(<const uint64_t *>src, <uint64_t *>block, nc, H, W, stride_c,
                            stride_h, stride_w)
        view.base, view.row_stride, view.col_stride = block, W * nc, nc
    else:
        view.base, view.row_stride, view.col_stride = src, stride_h, stride_w
    view.W, view.channels = W, nc
    out_view[0] = view


cdef void _pool_task(const ForwardPlan *p, const Task *task, const Scratch *s,
                     floating init) noexcept nogil:
    """Pool one task with this thread's scratch; `init` (the running max's
    start) selects the compute type, p.itemsize and p.rmode the storage type
    of data, out and scratch (float16/bfloat16 are converted in registers)."""
    cdef Py_ssize_t PH = p.PH, PW = p.PW, roi_bins = PH * PW
    cdef Py_ssize_t c0 = task.c0, nc = min(p.block_channels, p.C - c0)
    cdef Py_ssize_t geom_len = _geom_len(PH, PW), group_bins = p.group_bins
    cdef Py_ssize_t itemsize = p.itemsize
    cdef int rmode = p.rmode
    cdef const Py_ssize_t *geom = p.geom
    cdef const Py_ssize_t *order = p.order
    cdef char *argmax = p.argmax
    # without argmax the kernels keep the values only (no compare and blend)
    cdef int32_t *ires = s.ires if argmax != NULL else NULL
    cdef Py_ssize_t i, r, k0, k1
    cdef roipool_block_t view
    cdef const Py_ssize_t *bounds
    _gather(p, task, s, &view)
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
            _store(p, s.res, itemsize, p.out, p.out_cl, r, c0, nc, k0, k1, s.stage)
            if argmax != NULL:  # callers that only want out skip half the writes
                _store(p, s.ires, 4, argmax, p.argmax_cl, r, c0, nc, k0, k1, s.stage)
            k0 = k1
    if p.stream:
        roipool_store_fence()


cdef inline void _run_task(const ForwardPlan *p, const Task *task, const Scratch *s,
                           floating init) noexcept nogil:
    if p.align != NULL:
        _align_task(p, task, s, init)
    else:
        _pool_task(p, task, s, init)


cdef Py_ssize_t _run_plan(ForwardPlan *p, Py_ssize_t N, const Py_ssize_t *offsets,
                          int n_threads, floating init) noexcept nogil:
    """Split the call into tasks, give each thread its scratch, pool."""
    cdef Py_ssize_t B = p.block_channels, n_blocks = (p.C + B - 1) // B
    cdef Py_ssize_t n, cb, k, count, t, n_tasks = 0, n_workers, slices, tid = 0
    cdef Task *tasks
    cdef char *scratch
    cdef Scratch thread_scratch
    # Tasks: (image, channel block, slice of that image's ROIs). Enough
    # slices that dynamic scheduling evens out ROIs whose areas differ 100x.
    slices = (4 * n_threads + N * n_blocks - 1) // (N * n_blocks)
    tasks = <Task *>malloc(N * n_blocks * slices * sizeof(Task))
    if tasks == NULL:
        return NO_MEMORY
    for n in range(N):
        count = offsets[n + 1] - offsets[n]
        if count == 0:
            continue
        k = min(slices, count)
        for cb in range(n_blocks):
            for t in range(k):
                tasks[n_tasks].image = n
                tasks[n_tasks].c0 = cb * B
                tasks[n_tasks].first = offsets[n] + count * t // k
                tasks[n_tasks].end = offsets[n] + count * (t + 1) // k
                n_tasks += 1
    p.tasks = tasks
    n_workers = max(1, min(<Py_ssize_t>n_threads, n_tasks))
    _plan_scratch(p, p.itemsize)
    scratch = <char *>malloc(n_workers * p.thread_bytes + 64)
    if scratch == NULL:
        free(tasks)
        return NO_MEMORY
    if n_workers == 1:
        # one worker (small calls): no parallel region, whose start-up would
        # cost more than the work
        thread_scratch = _scratch_at(p, scratch, 0)
        for t in range(n_tasks):
            _run_task(p, &tasks[t], &thread_scratch, init)
    else:
        with parallel(num_threads=n_workers):
            tid = omp_get_thread_num()
            thread_scratch = _scratch_at(p, scratch, tid)
            for t in prange(n_tasks, schedule='dynamic'):
                _run_task(p, &tasks[t], &thread_scratch, init)
    free(tasks)
    free(scratch)
    return OK


cdef Py_ssize_t _forward(ForwardPlan *p, const floating[:, ::1] rois, const RoiRule *rule,
                         char *out, bint out_cl, char *argmax, bint argmax_cl,
                         int n_threads) noexcept nogil:
    """p holds the map (data, itemsize, rmode, strides, C); the rest is set here."""
    cdef Py_ssize_t R = rois.shape[0], itemsize = p.itemsize, status
    cdef Py_ssize_t *geom = NULL
    cdef Py_ssize_t *order = NULL
    cdef Py_ssize_t *offsets = NULL
    p.H, p.W, p.PH, p.PW = rule.H, rule.W, rule.PH, rule.PW
    if out == NULL or p.C == 0:  # empty output: only the ROI checks
        geom = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
        status = NO_MEMORY if geom == NULL else _prepare(rois, rule, SCAN_SCALED, geom,
                                                         NULL, NULL)
        free(geom)
        return status
    geom = <Py_ssize_t *>malloc(max(R * _geom_len(p.PH, p.PW), 1) * sizeof(Py_ssize_t))
    order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    offsets = <Py_ssize_t *>malloc((rule.N + 1) * sizeof(Py_ssize_t))
    status = NO_MEMORY
    if geom != NULL and order != NULL and offsets != NULL:
        status = _prepare(rois, rule, SCAN_GEOMETRY, geom, order, offsets)
    if status == OK and R > 0:
        # Channels-last data is read in place when one block covers all channels.
        p.gather = not (p.C == 1 or (p.stride_c == 1 and p.C <= _max_block))
        p.block_channels = _block_size(p.C, p.H * p.W, itemsize, p.gather)  # >= 1: C >= 1
        # Output beyond the caches is streamed to memory (see roipool_stream32_avx2).
        p.stream = R * p.C * p.PH * p.PW * itemsize > _stream_bytes
        p.geom, p.order = geom, order
        p.out, p.out_cl, p.argmax, p.argmax_cl = out, out_cl, argmax, argmax_cl
        status = _run_plan(p, rule.N, offsets, n_threads,
                           <floating>(-FLT_MAX if rule.rmode == RMODE_NONE else -INFINITY))
    free(geom)
    free(order)
    free(offsets)
    return status


def forward(cnp.ndarray data not None, rois, double scale_t, double scale_d, bint torchvision,
            int rmode, Py_ssize_t PH, Py_ssize_t PW, cnp.ndarray out not None, bint out_cl,
            cnp.ndarray argmax, bint argmax_cl, int n_threads):
    """Pool; returns Status.OK, Status.NO_MEMORY or a bad row as
    r * ROW_CODES + RowError.

    data: [N, C, H, W] in native byte order, any strides whose byte counts are
    multiples of the item size: float32/float64, or float16/bfloat16 (rmode
    says which) read as they are; rois C-contiguous in the compute dtype
    (float32 for the halves); out/argmax: [R, C, PH, PW] in data's dtype /
    int32 whose memory is C-contiguous [R, C, PH, PW] or, with
    out_cl/argmax_cl, [R, PH, PW, C]; argmax may be None.
    """
    return _forward_arrays(data, rois, scale_t, scale_d, torchvision, rmode, PH, PW, out,
                           out_cl, argmax, argmax_cl, n_threads)


# The plain call (roipool._ops._plain_call) costs mostly its Python steps on a
# small call; these two defs do its array steps through the C API: reading a
# few fields and allocating cost far less than the attribute lookups,
# flags objects and argument parsing of the same steps in Python.
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


def forward_new(cnp.ndarray data not None, cnp.ndarray rois not None, double scale_t,
                double scale_d, bint torchvision, Py_ssize_t PH, Py_ssize_t PW, int n_threads,
                bint with_argmax, Py_ssize_t max_bytes):
    """forward() into new outputs, for arrays plain_arrays() accepted: out
    (or (out, argmax)) on success, the status as an int otherwise, None when
    out would take max_bytes or more (the caller allocates it then). out
    follows a channels-last data as roipool._arrays.new_output makes it (a
    transposed view of [R, PH, PW, C] memory); small outputs come from NumPy's
    allocator, as new_output's do."""
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(data)
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(data), R = cnp.PyArray_DIMS(rois)[0]
    cdef Py_ssize_t C = shape[1]
    cdef bint cl = (C > 1 and cnp.PyArray_STRIDES(data)[1] == itemsize
                    and not cnp.PyArray_IS_C_CONTIGUOUS(data))
    # in double: the product of four sizes may exceed 64 bits
    if <double>R * <double>C * <double>PH * <double>PW * <double>itemsize >= <double>max_bytes:
        return None
    cdef cnp.npy_intp dims[4]
    cdef cnp.npy_intp perm[4]
    cdef cnp.PyArray_Dims to_nchw
    if cl:
        dims[0], dims[1], dims[2], dims[3] = R, PH, PW, C
    else:
        dims[0], dims[1], dims[2], dims[3] = R, C, PH, PW
    out = cnp.PyArray_EMPTY(4, dims, cnp.PyArray_TYPE(data), 0)
    argmax = cnp.PyArray_EMPTY(4, dims, cnp.NPY_INT32, 0) if with_argmax else None
    if cl:
        perm[0], perm[1], perm[2], perm[3] = 0, 3, 1, 2
        to_nchw.ptr, to_nchw.len = perm, 4
        out = cnp.PyArray_Transpose(<cnp.ndarray>out, &to_nchw)
        if with_argmax:
            argmax = cnp.PyArray_Transpose(<cnp.ndarray>argmax, &to_nchw)
    cdef Py_ssize_t status = _forward_arrays(data, rois, scale_t, scale_d, torchvision,
                                             RMODE_NONE, PH, PW, out, cl, argmax, cl, n_threads)
    if status != OK:
        return status
    return (out, argmax) if with_argmax else out


cdef Py_ssize_t _forward_arrays(cnp.ndarray data, rois, double scale_t, double scale_d,
                                bint torchvision, int rmode, Py_ssize_t PH, Py_ssize_t PW,
                                cnp.ndarray out, bint out_cl, cnp.ndarray argmax,
                                bint argmax_cl, int n_threads) except? -1:
    """forward()'s work, for both defs."""
    cdef RoiRule rule
    cdef ForwardPlan p
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(data)
    cdef const cnp.npy_intp *strides = cnp.PyArray_STRIDES(data)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(data)
    rule.scale_t, rule.scale_d, rule.torchvision, rule.rmode = scale_t, scale_d, torchvision, rmode
    rule.PH, rule.PW = PH, PW
    rule.N, rule.H, rule.W = shape[0], shape[2], shape[3]
    p.data = <const char *>cnp.PyArray_DATA(data)
    p.itemsize, p.rmode, p.C = itemsize, rmode, shape[1]
    p.align = NULL
    p.stride_n, p.stride_c = strides[0] // itemsize, strides[1] // itemsize
    p.stride_h, p.stride_w = strides[2] // itemsize, strides[3] // itemsize
    if cnp.PyArray_SIZE(out) == 0:  # nothing to write; the ROI scan still runs
        out = argmax = None
    if itemsize == 8:
        return _forward_call(<double>0, &p, rois, &rule, out, out_cl, argmax, argmax_cl,
                             n_threads)
    return _forward_call(<float>0, &p, rois, &rule, out, out_cl, argmax, argmax_cl, n_threads)


cdef Py_ssize_t _forward_call(floating kind, ForwardPlan *p, rois, RoiRule *rule,
                              cnp.ndarray out, bint out_cl, cnp.ndarray argmax, bint argmax_cl,
                              int n_threads):
    """A typed view of rois for _forward[floating] (`kind`, the compute type,
    only selects the type)."""
    cdef const floating[:, ::1] r = rois
    # out and argmax are contiguous blocks (checked or allocated so by the
    # Python layer): their data pointers are all the kernel needs, and taking
    # them costs far less than a typed view, which matters on small calls.
    cdef char *out_ptr = NULL if out is None else <char *>cnp.PyArray_DATA(out)
    cdef char *argmax_ptr = NULL if argmax is None else <char *>cnp.PyArray_DATA(argmax)
    cdef Py_ssize_t status
    with nogil:
        status = _forward(p, r, rule, out_ptr, out_cl, argmax_ptr, argmax_cl, n_threads)
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


cdef bint _backward_block(floating *plane, const floating *grad_out, const int32_t *argmax,
                          const Py_ssize_t *order, Py_ssize_t first, Py_ssize_t end,
                          Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t roi_bins,
                          Py_ssize_t HW) noexcept nogil:
    """Planes c0 .. c0 + nc of one image: zero, then the ROIs order[first:end]
    added in that order. True when an argmax value was out of range."""
    cdef Py_ssize_t i, r
    cdef const floating *go_next
    cdef const int32_t *am_next
    cdef bint bad = False
    memset(plane, 0, nc * HW * sizeof(floating))
    for i in range(first, end):
        r = order[i]
        go_next = NULL
        am_next = NULL
        if i + 1 < end:
            go_next = grad_out + (order[i + 1] * C + c0) * roi_bins
            am_next = argmax + (order[i + 1] * C + c0) * roi_bins
        bad |= _scatter(plane, grad_out + (r * C + c0) * roi_bins,
                        argmax + (r * C + c0) * roi_bins, go_next, am_next, nc, roi_bins, HW)
    return bad


cdef bint _backward_block_half(float *plane, float *chunk, const uint16_t *grad_out,
                               const int32_t *argmax, const Py_ssize_t *order, Py_ssize_t first,
                               Py_ssize_t end, Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc,
                               Py_ssize_t roi_bins, Py_ssize_t HW, int rmode) noexcept nogil:
    """_backward_block for float16/bfloat16 (rmode): each ROI's chunk is
    widened to float32 (`chunk`, nc * roi_bins floats) by the active ISA's
    kernels, which then add it with every add rounded, as in half_t."""
    cdef Py_ssize_t i, off, n = nc * roi_bins
    cdef bint bad = False
    cdef int g_nan
    memset(plane, 0, nc * HW * sizeof(float))
    for i in range(first, end):
        off = (order[i] * C + c0) * roi_bins
        if rmode == RMODE_HALF:
            g_nan = roipool_kernels.widen_f16(grad_out + off, n, chunk)
        else:
            g_nan = roipool_kernels.widen_bf16(grad_out + off, n, chunk)
        if i + 1 < end:  # see _scatter
            off = (order[i + 1] * C + c0) * roi_bins
            _prefetch_chunk(grad_out + off, argmax + off, n, 2)
            off = (order[i] * C + c0) * roi_bins
        if rmode == RMODE_HALF:
            bad |= roipool_kernels.scatter_f16(plane, chunk, argmax + off, nc, roi_bins, HW,
                                               g_nan)
        else:
            bad |= roipool_kernels.scatter_bf16(plane, chunk, argmax + off, nc, roi_bins, HW,
                                                g_nan)
    return bad


cdef Py_ssize_t _backward(floating kind, const char *grad_out, Py_ssize_t C,
                          Py_ssize_t roi_bins, const floating[:, ::1] rois,
                          const int32_t *argmax, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                          char *grad, int rmode, int n_threads) noexcept nogil:
    """grad_out [R, C, PH, PW] and grad [N, C, H, W]: C-contiguous, storage
    type; `kind` is the compute type. float16/bfloat16 planes are added in a
    per-thread float32 scratch and converted when done."""
    cdef Py_ssize_t R = rois.shape[0], HW = H * W
    cdef Py_ssize_t status, t, n, c0, nc, n_workers, B, n_blocks, per_thread = 0
    cdef Py_ssize_t size = sizeof(floating) if rmode == RMODE_NONE else 2, tid = 0
    cdef RoiRule batch_only  # PH = PW = 0: geometry rows hold just b
    cdef unsigned char *bad = NULL
    cdef float *scratch = NULL
    cdef float *plane
    cdef float *chunk
    cdef Py_ssize_t *geom = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
    if geom == NULL or order == NULL or offsets == NULL:
        status = NO_MEMORY
    else:
        batch_only.scale_t = batch_only.scale_d = 1.0
        batch_only.torchvision, batch_only.rmode = False, RMODE_NONE
        batch_only.N, batch_only.H, batch_only.W, batch_only.PH, batch_only.PW = N, H, W, 0, 0
        status = _prepare(rois, &batch_only, SCAN_BATCH, geom, order, offsets)
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
    n_blocks = (C + B - 1) // B
    n_workers = max(1, min(<Py_ssize_t>n_threads, N * n_blocks))
    # argmax is range-checked here, as it is read, instead of in a separate
    # pass over it (it is as large as grad_out): one flag per task, no race.
    bad = <unsigned char *>calloc(N * n_blocks, 1)
    if rmode != RMODE_NONE:  # per thread: B planes, then one ROI's chunk
        per_thread = B * (HW + roi_bins)
        scratch = <float *>malloc(n_workers * per_thread * sizeof(float))
    if bad == NULL or (rmode != RMODE_NONE and scratch == NULL):
        free(geom); free(order); free(offsets); free(bad); free(scratch)
        return NO_MEMORY
    with parallel(num_threads=n_workers):
        tid = omp_get_thread_num()
        for t in prange(N * n_blocks, schedule='dynamic'):
            n = t // n_blocks
            c0 = (t % n_blocks) * B
            nc = min(B, C - c0)
            if rmode == RMODE_NONE:
                bad[t] = _backward_block(<floating *>(grad + (n * C + c0) * HW * size),
                                         <const floating *>grad_out, argmax, order, offsets[n],
                                         offsets[n + 1], C, c0, nc, roi_bins, HW)
            else:
                plane = scratch + tid * per_thread
                chunk = plane + B * HW
                bad[t] = _backward_block_half(plane, chunk, <const uint16_t *>grad_out, argmax,
                                              order, offsets[n], offsets[n + 1], C, c0, nc,
                                              roi_bins, HW, rmode)
                if rmode == RMODE_HALF:
                    roipool_kernels.narrow_f16(plane, nc * HW,
                                               <uint16_t *>(grad + (n * C + c0) * HW * size))
                else:
                    roipool_kernels.narrow_bf16(plane, nc * HW,
                                                <uint16_t *>(grad + (n * C + c0) * HW * size))
    status = OK
    for t in range(N * n_blocks):
        if bad[t]:
            status = BAD_ARGMAX
            break
    free(geom); free(order); free(offsets); free(bad); free(scratch)
    return status


def backward(cnp.ndarray grad_out not None, rois, argmax, Py_ssize_t N, Py_ssize_t H,
             Py_ssize_t W, cnp.ndarray grad not None, int rmode, int n_threads):
    """Scatter grad_out through argmax into grad (all C-contiguous; grad_out
    and grad in the storage type, float16/bfloat16 included, native byte
    order). Returns OK, NO_MEMORY, BAD_ARGMAX (a value outside [-1, H*W),
    skipped; grad is then partly written) or a bad ROI row code. With
    N * C * H * W == 0 nothing is scattered and argmax is not read."""
    if cnp.PyArray_ITEMSIZE(grad_out) == 8:
        return _backward_call(<double>0, grad_out, rois, argmax, N, H, W, grad, rmode,
                              n_threads)
    return _backward_call(<float>0, grad_out, rois, argmax, N, H, W, grad, rmode, n_threads)


cdef Py_ssize_t _backward_call(floating kind, cnp.ndarray grad_out, rois, argmax, Py_ssize_t N,
                               Py_ssize_t H, Py_ssize_t W, cnp.ndarray grad, int rmode,
                               int n_threads):
    """Typed views for _backward[floating] (`kind`, the compute type, only
    selects the type); grad_out and grad by their data pointers."""
    cdef const floating[:, ::1] r = rois
    cdef const int32_t[:, :, :, ::1] am = argmax
    cdef const char *go = <const char *>cnp.PyArray_DATA(grad_out)
    cdef char *g = <char *>cnp.PyArray_DATA(grad)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(grad_out)
    cdef const int32_t *am_ptr = &am[0, 0, 0, 0] if cnp.PyArray_SIZE(grad_out) else NULL
    cdef Py_ssize_t status
    with nogil:
        status = _backward(<floating>0, go, shape[1], shape[2] * shape[3], r, am_ptr, N, H, W,
                           g, rmode, n_threads)
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


def bin_bounds(rois, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, double scale_t,
               double scale_d, bint torchvision, int rmode, Py_ssize_t PH, Py_ssize_t PW,
               geom):
    """The kernel's own ROI geometry into geom [R, 1 + 2 PH + 2 PW] (intp):
    batch index, hstart, hend, wstart, wend. For benchmarks (visit counts)
    and diagnostics; returns Status.OK or a bad row code like forward()."""
    cdef Py_ssize_t[:, ::1] g = geom
    cdef Py_ssize_t R = g.shape[0], status
    cdef Py_ssize_t *order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
    cdef const float[:, ::1] r32
    cdef const double[:, ::1] r64
    cdef Py_ssize_t *gp = &g[0, 0] if R else NULL
    cdef RoiRule rule
    rule.scale_t, rule.scale_d, rule.torchvision, rule.rmode = scale_t, scale_d, torchvision, rmode
    rule.N, rule.H, rule.W, rule.PH, rule.PW = N, H, W, PH, PW
    if order == NULL or offsets == NULL:
        status = NO_MEMORY
    elif rois.dtype.itemsize == 4:
        r32 = rois
        status = _prepare(r32, &rule, SCAN_GEOMETRY, gp, order, offsets)
    else:
        r64 = rois
        status = _prepare(r64, &rule, SCAN_GEOMETRY, gp, order, offsets)
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
    """True when the extension was compiled with OpenMP.

    Without OpenMP (a compiler that lacks it) every call runs on one thread.

    Returns
    -------
    bool

    Examples
    --------
    >>> import roipool
    >>> isinstance(roipool.openmp_enabled(), bool)
    True
    """
    return bool(ROIPOOL_OPENMP)


def isa_supported(int level):
    """True when this build has the path of that id (roipool._config.ISA_NAMES)
    and the CPU runs it."""
    return bool(roipool_isa_supported(level))


def get_isa():
    """The id of the SIMD path in use (an index of roipool._config.ISA_NAMES)."""
    return roipool_get_isa()


def set_isa(int level):
    """Select the SIMD path of that id, falling back to the best supported
    one below it in its family; returns the id in use."""
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


# RoIAlign: its own rule and kernels on the plan, tasks, gather and stores above.
include "_roi_align.pxi"
