# The machinery every operator of the extension shares (included by
# _roi_pool.pyx, before the operators): status codes and rounding modes, the
# call object the Python layer builds (Call, Rule), the layout rule, the
# workspace that groups ROIs by image, the plan of a forward call with its
# parallel task split (image, channel block, ROI slice) over prange, the
# per-thread scratch, the pixel-major gather of a channel block and the
# store/transposes of results. An operator supplies its ROI scan and the
# function that runs one task (CONTRIBUTING.md, "How to add an operator").

from cpython.ref cimport Py_INCREF

import numpy as _np

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

# Channel blocks are sized so one gathered block of the map stays in L2;
# roipool._config sets this from the L2 size at import.
cdef Py_ssize_t _cache_budget = 256 * 1024
cdef Py_ssize_t _max_block = 64
# Outputs larger than this are written with non-temporal stores.
cdef Py_ssize_t _stream_bytes = 8 * 1024 * 1024

# How many forward plans used a ring of rows (_align_ring): tests check that
# a path they mean to cover ran.
cdef extern from *:
    """
    static void roipool_count(long *counter) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }
    """
    void roipool_count(long *counter) noexcept nogil
cdef long _ring_plans = 0


cdef inline floating _as_storage(floating x, int rmode) noexcept nogil:
    """x rounded to the storage type T (docs/semantics.md, "Reduced
    precision"): float16/bfloat16 arithmetic rounds every intermediate."""
    if floating is float:
        if rmode == RMODE_HALF:
            return roipool_round_half(x)
        if rmode == RMODE_BF16:
            return roipool_round_bf16(x)
    return x


# ---- the call: what the Python layer validated, as the kernels take it ------

# How ROI rows become bins: the arguments every operator's rule has
# (docs/semantics.md, "The rule"), and the map the bins are clipped to.
ctypedef struct RoiRule:
    double scale_t        # spatial_scale as MXNet holds it (a value of T)
    double scale_d        # spatial_scale as given (compat="torchvision")
    bint torchvision      # coordinates times scale_d in double
    int rmode             # Rounding
    Py_ssize_t N, H, W    # batch size and the map the bins are clipped to
    Py_ssize_t PH, PW     # pooled grid


cdef class Rule:
    """A call's rule (scale, compat, rounding, pooled size), built once by
    roipool._validate.check_rule; the map's N, H, W are the call's data's."""
    cdef RoiRule c

    def __cinit__(self, double scale_t, double scale_d, bint torchvision, int rmode,
                  Py_ssize_t PH, Py_ssize_t PW):
        self.c.scale_t, self.c.scale_d, self.c.torchvision = scale_t, scale_d, torchvision
        self.c.rmode, self.c.PH, self.c.PW = rmode, PH, PW
        self.c.N = self.c.H = self.c.W = 0

    @property
    def pooled(self):
        return self.c.PH, self.c.PW

    @property
    def rmode(self):
        return self.c.rmode


cdef class Call:
    """One validated forward call, for the plain and the out= call alike
    (roipool._ops and roipool._call build it): data [N, C, H, W] in the
    kernel's dtype (native order, aligned, any strides), rois C-contiguous in
    the compute dtype, the Rule, the thread count, and out/argmax buffers of
    [R, C, PH, PW] whose memory is C-contiguous or channels-last (the layout
    is read from their strides); argmax may be None. new_outputs(call) fills
    out (and argmax when want_argmax) with new arrays."""
    cdef public cnp.ndarray data, out, argmax
    cdef public object rois
    cdef public Rule rule
    cdef public int n_threads
    cdef public bint want_argmax

    # __init__, not __cinit__: plain_call makes its Call without parsing arguments
    def __init__(self, cnp.ndarray data not None, rois, Rule rule not None,
                 cnp.ndarray out=None, cnp.ndarray argmax=None, int n_threads=1,
                 bint want_argmax=False):
        self.data, self.rois, self.rule = data, rois, rule
        self.out, self.argmax, self.n_threads = out, argmax, n_threads
        self.want_argmax = want_argmax


cdef inline bint _channels_last(Py_ssize_t C, Py_ssize_t stride_c, Py_ssize_t unit,
                                bint contiguous) noexcept nogil:
    """The one layout rule: channels adjacent in memory (stride `unit`) and
    not plainly contiguous (as when C == 1). Such data is read in place and
    the output follows it; a validated buffer of it has [*, H, W, C] memory."""
    return C > 1 and stride_c == unit and not contiguous


def channels_last(Py_ssize_t C, Py_ssize_t stride_c, Py_ssize_t unit, bint contiguous):
    """_channels_last for a tensor's sizes (roipool.torch's output format)."""
    return _channels_last(C, stride_c, unit, contiguous)


cdef inline bint _array_channels_last(cnp.ndarray a) noexcept:
    return cnp.PyArray_NDIM(a) == 4 and _channels_last(
        cnp.PyArray_DIMS(a)[1], cnp.PyArray_STRIDES(a)[1], cnp.PyArray_ITEMSIZE(a),
        cnp.PyArray_IS_C_CONTIGUOUS(a))


def is_channels_last(cnp.ndarray a not None):
    """_channels_last for an array (roipool._arrays.is_channels_last): a few
    C-API reads, where the same in Python costs a flags object and five
    attribute lookups."""
    return _array_channels_last(a)


# ---- output memory: every output buffer roipool allocates -------------------

cdef extern from "numpy/arrayobject.h":
    # steals a reference to descr
    object _array_empty "PyArray_Empty"(int nd, cnp.npy_intp *dims, cnp.dtype descr,
                                        int fortran)

from roipool import _outcache  # recycled blocks for large outputs

cdef cnp.dtype _INT32 = cnp.PyArray_DescrFromType(cnp.NPY_INT32)
cdef double _POOL_MIN_BYTES = _outcache.MIN_BYTES


cdef cnp.ndarray _empty_output(int nd, const cnp.npy_intp *shape, cnp.dtype dtype,
                               bint cl):
    """An uninitialised array of that shape and dtype; with cl, [R, C, PH, PW]
    viewing [R, PH, PW, C] memory (channels-last). From _outcache's recycled
    blocks when large, NumPy's allocator otherwise; MemoryError or ValueError
    when it cannot be had."""
    cdef cnp.npy_intp dims[32]
    cdef cnp.npy_intp perm[4]
    cdef cnp.PyArray_Dims to_nchw
    cdef double nbytes = dtype.itemsize
    cdef int i
    for i in range(nd):
        dims[i] = shape[i]
        nbytes *= <double>shape[i]  # in double: the product may exceed 64 bits
    if cl:
        dims[1], dims[2], dims[3] = shape[2], shape[3], shape[1]
    if nbytes >= _POOL_MIN_BYTES:
        arr = _outcache.empty(tuple([dims[i] for i in range(nd)]), dtype)
    else:
        Py_INCREF(dtype)
        arr = _array_empty(nd, dims, dtype, 0)
    if not cl:
        return arr
    perm[0], perm[1], perm[2], perm[3] = 0, 3, 1, 2
    to_nchw.ptr, to_nchw.len = perm, 4
    return cnp.PyArray_Transpose(<cnp.ndarray>arr, &to_nchw)


cdef cnp.ndarray _named_output(int nd, const cnp.npy_intp *shape, cnp.dtype dtype, bint cl,
                               str name):
    """_empty_output, or the MemoryError naming the array and its size
    (roipool._arrays.allocation_error)."""
    try:
        return _empty_output(nd, shape, dtype, cl)
    except (MemoryError, ValueError, OverflowError):
        pass
    from roipool._arrays import allocation_error
    raise allocation_error(tuple([shape[i] for i in range(nd)]), dtype, name, cl) from None


def new_output(tuple shape, dtype, str name, bint channels_last=False):
    """A new [R, C, PH, PW] (or any-shape, channel-major) array for a kernel to
    fill, channels-last in memory when asked. Every output buffer roipool
    allocates comes from here (large ones are recycled blocks of
    roipool._outcache). A size that cannot be allocated raises MemoryError
    naming `name` and the size."""
    cdef cnp.npy_intp dims[32]
    cdef Py_ssize_t i, nd = len(shape)
    cdef cnp.dtype d = dtype if isinstance(dtype, cnp.dtype) else _np.dtype(dtype)
    if nd > 32 or (channels_last and nd != 4):
        raise ValueError(f"cannot make an output of shape {shape}")
    try:
        for i in range(nd):
            dims[i] = shape[i]
    except OverflowError:
        from roipool._arrays import allocation_error
        raise allocation_error(shape, d, name, channels_last) from None
    return _named_output(<int>nd, dims, d, channels_last, name)


def new_outputs(Call call not None):
    """call.out (and call.argmax when call.want_argmax) as new [R, C, PH, PW]
    arrays in data's dtype / int32, channels-last when data is."""
    cdef cnp.npy_intp dims[4]
    cdef bint cl = _array_channels_last(call.data)
    dims[0], dims[1] = cnp.PyArray_DIMS(<cnp.ndarray>call.rois)[0], cnp.PyArray_DIMS(call.data)[1]
    dims[2], dims[3] = call.rule.c.PH, call.rule.c.PW
    call.out = _named_output(4, dims, <cnp.dtype>cnp.PyArray_DESCR(call.data), cl, "out")
    if call.want_argmax:
        call.argmax = _named_output(4, dims, _INT32, cl, "argmax")


# ---- the workspace: ROIs grouped by image ----------------------------------

ctypedef struct Workspace:
    # per ROI: the operator's geometry row of row_len values, [0] its image;
    # when grouped, the ROIs of image n are order[offsets[n]:offsets[n + 1]]
    Py_ssize_t *geom
    Py_ssize_t *order
    Py_ssize_t *offsets
    Py_ssize_t row_len


cdef bint _workspace_alloc(Workspace *ws, Py_ssize_t R, Py_ssize_t row_len, Py_ssize_t N,
                           bint grouped) noexcept nogil:
    """A workspace for R ROIs of N images (order/offsets only when grouped);
    False when out of memory (_workspace_free it all the same)."""
    ws.row_len = row_len
    ws.geom = <Py_ssize_t *>malloc(max(R * row_len, 1) * sizeof(Py_ssize_t))
    ws.order = ws.offsets = NULL
    if grouped:
        ws.order = <Py_ssize_t *>malloc(max(R, 1) * sizeof(Py_ssize_t))
        ws.offsets = <Py_ssize_t *>malloc((N + 1) * sizeof(Py_ssize_t))
        if ws.order == NULL or ws.offsets == NULL:
            return False
    return ws.geom != NULL


cdef void _workspace_free(Workspace *ws) noexcept nogil:
    free(ws.geom)
    free(ws.order)
    free(ws.offsets)
    ws.geom = ws.order = ws.offsets = NULL

cdef inline Py_ssize_t _check_batch(double x, Py_ssize_t N, Py_ssize_t r,
                                    Py_ssize_t *b) noexcept nogil:
    """A row's batch column: OK and its image in *b, or the row's error code.
    MXNet and torchvision both take the C cast of the value to int."""
    cdef double batch
    if not isfinite(x):
        return r * ROW_CODES + BAD_BATCH_NONFINITE
    batch = trunc(x)
    if batch < 0 or batch >= N:
        return r * ROW_CODES + BAD_BATCH_RANGE
    b[0] = <Py_ssize_t>batch
    return OK


cdef void _group_by_image(Workspace *ws, Py_ssize_t R, Py_ssize_t N) noexcept nogil:
    """Stable counting sort of the R ROIs by image (ws.geom rows, images
    checked in [0, N)) into ws.order/ws.offsets, ascending. ROIs of one image
    are pooled together, and backward adds in ascending ROI order
    (deterministic)."""
    cdef Py_ssize_t r, j, k, row_len = ws.row_len
    cdef const Py_ssize_t *geom = ws.geom
    cdef Py_ssize_t *order = ws.order
    cdef Py_ssize_t *offsets = ws.offsets
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

ctypedef void (*transpose_fn)(const void *src, Py_ssize_t ss, Py_ssize_t nc, Py_ssize_t nbins,
                              Py_ssize_t ld, void *dst) noexcept nogil

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
    Py_ssize_t N, C, H, W, PH, PW
    bint gather                # copy each channel block pixel-major first
    # ... or with ring_rows > 0 only the tiles of it the ROIs read, row by
    # row as they come, into a ring of that many rows (_gather_row)
    Py_ssize_t ring_rows
    Py_ssize_t block_channels  # channels per task
    Py_ssize_t group_bins      # bins per SIMD call, results staged in scratch
    bint stream                # out is written with non-temporal stores
    # per ROI: the operator's geometry row; ROIs grouped by image
    Workspace ws
    # outputs ([R, C, PH, PW] memory, or [R, PH, PW, C] when *_cl); argmax may be NULL
    char *out
    bint out_cl
    char *argmax
    bint argmax_cl
    # per-thread scratch: bytes of each part, laid out by _scratch_at
    Py_ssize_t res_bytes, ires_bytes, idx_bytes, stage_bytes, block_bytes, mark_bytes
    Py_ssize_t thread_bytes


ctypedef struct Scratch:
    # one thread's part of the scratch allocation (see _plan_scratch)
    void *res       # best values of a group of bins, channel-minor (storage type)
    int32_t *ires   # their argmax
    void *idx       # value-width argmax lanes (the x86 double paths)
    void *stage     # a ROI's block of out, staged for streaming
    void *block     # the gathered channel block
    char *marks     # with a ring: which tiles of the map the task reads (_mark_tiles)


# What an operator runs for one task, with its thread's scratch.
ctypedef void (*task_fn)(const ForwardPlan *p, const Task *task,
                         const Scratch *s) noexcept nogil


cdef void _plan_arrays(ForwardPlan *p, cnp.ndarray data, cnp.ndarray out,
                       cnp.ndarray argmax, const RoiRule *rule) noexcept:
    """The plan's map (data's pointer, item size, element strides, sizes)
    and outputs (pointers and layouts read from the buffers; NULL when out
    is empty, so only the ROI scan runs)."""
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(data)
    cdef const cnp.npy_intp *strides = cnp.PyArray_STRIDES(data)
    cdef const cnp.npy_intp *shape = cnp.PyArray_DIMS(data)
    p.data = <const char *>cnp.PyArray_DATA(data)
    p.itemsize, p.rmode, p.N, p.C = itemsize, rule.rmode, shape[0], shape[1]
    p.H, p.W = shape[2], shape[3]
    p.PH, p.PW = rule.PH, rule.PW
    p.stride_n, p.stride_c = strides[0] // itemsize, strides[1] // itemsize
    p.stride_h, p.stride_w = strides[2] // itemsize, strides[3] // itemsize
    p.out = p.argmax = NULL
    p.out_cl = p.argmax_cl = False
    if out is not None and cnp.PyArray_SIZE(out) != 0:
        # contiguous blocks (checked or allocated so by the Python layer):
        # their data pointers are all the kernel needs
        p.out, p.out_cl = <char *>cnp.PyArray_DATA(out), _array_channels_last(out)
        if argmax is not None:
            p.argmax = <char *>cnp.PyArray_DATA(argmax)
            p.argmax_cl = _array_channels_last(argmax)


cdef inline void _plan_layout(ForwardPlan *p, Py_ssize_t R) noexcept nogil:
    """How the tasks read the map and write out: gathered blocks or the map
    in place, channels per task, streamed stores."""
    # Channels-last data is read in place when one block covers all channels.
    p.gather = not (p.C == 1 or (p.stride_c == 1 and p.C <= _max_block))
    p.ring_rows = 0
    p.block_channels = _block_size(p.C, p.H * p.W, p.itemsize, p.gather)  # >= 1: C >= 1
    # Output beyond the caches is streamed to memory (see roipool_stream32_avx2).
    p.stream = R * p.C * p.PH * p.PW * p.itemsize > _stream_bytes


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
    p.block_bytes = _align64((p.ring_rows if p.ring_rows else p.H) * p.W * B * itemsize
                             if p.gather else 0)
    p.mark_bytes = _align64(p.H * _n_tiles(p.W) if p.ring_rows else 0)
    p.thread_bytes = (p.res_bytes + p.ires_bytes + p.idx_bytes + p.stage_bytes
                      + p.block_bytes + p.mark_bytes + 64)


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
    at += p.block_bytes
    s.marks = at
    return s


cdef inline void _store(const ForwardPlan *p, const Scratch *scratch, bint argmax,
                        Py_ssize_t r, Py_ssize_t c0, Py_ssize_t nc, Py_ssize_t k0,
                        Py_ssize_t k1) noexcept nogil:
    """Bins [k0, k1) of ROI r, channels [c0, c0 + nc), from the channel-minor
    scratch (values, or with `argmax` their argmax) to out (argmax),
    channel-major ([R, C, PH, PW] memory) or channels-last ([R, PH, PW, C]
    memory, the scratch layout itself)."""
    cdef const void *src = scratch.ires if argmax else scratch.res
    cdef Py_ssize_t itemsize = 4 if argmax else p.itemsize
    cdef char *dst = p.argmax if argmax else p.out
    cdef bint cl = p.argmax_cl if argmax else p.out_cl
    cdef void *stage = scratch.stage
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
        roipool_transpose64(src, nc, nc, n_bins, roi_bins, dst)
        return
    if itemsize == 2:
        transpose = roipool_kernels.transpose16
    if p.stream and n_bins == roi_bins:
        # the ROI's block of out is contiguous: stage it, stream it (in
        # 4-byte words; an odd count of 16-bit elements leaves one)
        transpose(src, nc, nc, n_bins, roi_bins, stage)
        roipool_kernels.stream32(stage, n_bytes // 4, dst)
        if n_bytes % 4:
            memcpy(dst + n_bytes - 2, <const char *>stage + n_bytes - 2, 2)
    else:
        transpose(src, nc, nc, n_bins, roi_bins, dst)


cdef inline void _gather_strided(const word *src, word *block, Py_ssize_t nc, Py_ssize_t w0,
                                 Py_ssize_t n, Py_ssize_t stride_c,
                                 Py_ssize_t stride_w) noexcept nogil:
    """Pixels w0 .. w0 + n of one row of channels [0, nc) of src (element
    strides) to block pixel-major."""
    cdef Py_ssize_t j, w
    for j in range(nc):
        for w in range(w0, w0 + n):
            block[w * nc + j] = src[j * stride_c + w * stride_w]


cdef void _gather_span(const ForwardPlan *p, const char *src, char *block, Py_ssize_t nc,
                       Py_ssize_t h, Py_ssize_t w0, Py_ssize_t n) noexcept nogil:
    """Pixels w0 .. w0 + n of row h of the channel block at src (the map of
    its image from its first channel) into the pixel-major block (at its
    row 0). With rows W pixels apart a span may run on past its row (the
    whole map: h = 0, n = H * W)."""
    cdef Py_ssize_t itemsize = p.itemsize, stride_c = p.stride_c, stride_w = p.stride_w, w
    src += h * p.stride_h * itemsize
    if stride_c == 1:
        for w in range(w0, w0 + n):
            memcpy(block + w * nc * itemsize, src + w * stride_w * itemsize, nc * itemsize)
    elif stride_w == 1:
        # nc planes of row segments: their transpose, by SIMD tiles
        src += w0 * itemsize
        block += w0 * nc * itemsize
        if itemsize == 2:
            roipool_kernels.transpose16(src, stride_c, n, nc, nc, block)
        elif itemsize == 4:
            roipool_kernels.transpose32(src, stride_c, n, nc, nc, block)
        else:
            roipool_transpose64(src, stride_c, n, nc, nc, block)
    elif itemsize == 2:
        _gather_strided(<const uint16_t *>src, <uint16_t *>block, nc, w0, n, stride_c, stride_w)
    elif itemsize == 4:
        _gather_strided(<const uint32_t *>src, <uint32_t *>block, nc, w0, n, stride_c, stride_w)
    else:
        _gather_strided(<const uint64_t *>src, <uint64_t *>block, nc, w0, n, stride_c, stride_w)


cdef enum:
    # RoIAlign gathers the map by tiles of one row and this many pixels (a
    # cache line of float32 per channel): only those its ROIs read.
    _TILE_W = 16


cdef inline Py_ssize_t _n_tiles(Py_ssize_t W) noexcept nogil:
    return (W + _TILE_W - 1) // _TILE_W


cdef inline const char *_task_src(const ForwardPlan *p, const Task *task) noexcept nogil:
    """The map of the task's image from the first channel of its block."""
    return p.data + (task.image * p.stride_n + task.c0 * p.stride_c) * p.itemsize


cdef inline void _task_block(const ForwardPlan *p, const Task *task, const Scratch *s,
                             roipool_block_t *view) noexcept nogil:
    """The task's channel block of the map as the kernels read it (*view):
    when p.gather, a pixel-major copy in the thread's scratch, so every bin
    visit reads one short contiguous channel vector from a block that stays
    in L2 (copied here; with a ring the operator marks the tiles its ROIs
    read and copies them row by row as its ROIs need them: _mark_tiles,
    _gather_row); otherwise the map in place."""
    cdef Py_ssize_t H = p.H, W = p.W, h
    cdef Py_ssize_t nc = min(p.block_channels, p.C - task.c0)
    cdef const char *src = _task_src(p, task)
    if p.gather:
        if p.ring_rows:
            memset(s.marks, 0, H * _n_tiles(W))
        elif p.stride_h == W * p.stride_w:
            _gather_span(p, src, <char *>s.block, nc, 0, 0, H * W)
        else:
            for h in range(H):
                _gather_span(p, src, <char *>s.block + h * W * nc * p.itemsize, nc, h, 0, W)
        view.base, view.row_stride, view.col_stride = s.block, W * nc, nc
    else:
        view.base, view.row_stride, view.col_stride = src, p.stride_h, p.stride_w
    view.W, view.channels = W, nc


cdef void _mark_tiles(const ForwardPlan *p, const Scratch *s, Py_ssize_t h0, Py_ssize_t h1,
                      Py_ssize_t w0, Py_ssize_t w1) noexcept nogil:
    """With a ring: the task reads rows h0 .. h1, columns w0 .. w1 (inclusive)."""
    cdef Py_ssize_t nt = _n_tiles(p.W), h
    for h in range(h0, h1 + 1):
        memset(s.marks + h * nt + w0 // _TILE_W, 1, w1 // _TILE_W - w0 // _TILE_W + 1)


cdef void _gather_row(const ForwardPlan *p, const Task *task, const Scratch *s,
                      Py_ssize_t h) noexcept nogil:
    """With a ring: the marked tiles of row h into its slot, each run of
    them at once. The ring stays in L2: the block is written there and read
    back from there, and never streams out to memory."""
    cdef Py_ssize_t nt = _n_tiles(p.W), t = 0, e, w0, n, n_rows = p.ring_rows
    cdef Py_ssize_t nc = min(p.block_channels, p.C - task.c0), row_bytes = p.W * nc * p.itemsize
    cdef const char *marks = s.marks + h * nt
    cdef char *row = <char *>s.block + (h % n_rows) * row_bytes
    while t < nt:
        if not marks[t]:
            t += 1
            continue
        e = t + 1
        while e < nt and marks[e]:
            e += 1
        w0, n = t * _TILE_W, min(e * _TILE_W, p.W) - t * _TILE_W
        _gather_span(p, _task_src(p, task), row, nc, h, w0, n)
        t = e


cdef Py_ssize_t _run_plan(ForwardPlan *p, int n_threads, task_fn run_task) noexcept nogil:
    """Split the call into tasks, give each thread its scratch, run them."""
    cdef Py_ssize_t B = p.block_channels, n_blocks = (p.C + B - 1) // B, N = p.N
    cdef const Py_ssize_t *offsets = p.ws.offsets
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
            run_task(p, &tasks[t], &thread_scratch)
    else:
        with parallel(num_threads=n_workers):
            tid = omp_get_thread_num()
            thread_scratch = _scratch_at(p, scratch, tid)
            for t in prange(n_tasks, schedule='dynamic'):
                run_task(p, &tasks[t], &thread_scratch)
    free(tasks)
    free(scratch)
    return OK
