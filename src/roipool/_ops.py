"""Public operators: roi_pooling, roi_align and their backwards."""

from roipool import _call, _roi_pool
from roipool import _arrays as a
from roipool import _validate as v
from roipool._roi_pool import Status
from roipool._status import raise_bad_status


def roi_pooling(data, rois, pooled_size, spatial_scale, out=None, *, argmax=None,
                return_argmax=False, num_threads=None, compat="mxnet"):
    """ROI max pooling, exactly as ``mxnet.npx.roi_pooling`` (or torchvision's).

    For each ROI, the feature-map region it covers is split into a
    ``PH x PW`` grid of bins and each bin's maximum is taken, per channel.
    The rule, bit for bit, is the contract's (``docs/semantics.md``, "The
    rule"). Inputs are never modified. The GIL is released while the
    kernels run.

    Parameters
    ----------
    data : array_like [N, C, H, W], float32, float64, float16 or bfloat16
        Feature maps (bfloat16 as ``ml_dtypes.bfloat16``). Any strides and
        either byte order; a channels-last array (an ``np.transpose`` of
        NHWC memory) is read in place. Anything NumPy turns into an array is
        accepted, as are CPU objects with ``__dlpack__``.
    rois : array_like [R, 5], any real dtype
        Rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates, corners
        inclusive; converted to data's dtype first, as MXNet does.
    pooled_size : int or (int, int)
        Output grid ``(PH, PW)`` per ROI; an int ``k`` is ``(k, k)``.
    spatial_scale : float > 0
        Feature-map size / image size (above 1 is allowed); a finite number.
    out : ndarray [R, C, PH, PW], optional
        Buffer to fill, of data's dtype, C-contiguous or channels-last
        contiguous, writable, not sharing memory with the inputs; it is
        returned. Without it the output is allocated, channels-last when data
        is.
    argmax : ndarray [R, C, PH, PW] of int32, optional
        Buffer to fill with ``h * W + w`` of each maximum (-1 for an empty
        bin), with out='s requirements.
    return_argmax : bool, default False
        Return ``(out, argmax)`` instead of ``out``. When no argmax is asked
        for, none is stored at all (half the output traffic).
    num_threads : int, optional
        OpenMP threads for this call (>= 1, capped at the processors this
        process may run on). None uses OpenMP's default, which honours
        ``OMP_NUM_THREADS`` and threadpoolctl limits. The result does not
        depend on it.
    compat : {"mxnet", "torchvision"}, default "mxnet"
        Whose scale rounding to follow. "mxnet" keeps spatial_scale as a C
        float, then converts it to data's dtype; "torchvision" rounds it to
        data's dtype directly, as ``torchvision.ops.roi_pool`` does on the CPU
        (bit for bit the same results, for every dtype). The rest of the rule
        is the same; the two differ only off powers of two, mostly for float64.

    Returns
    -------
    out : ndarray [R, C, PH, PW]
        The pooled maxima, in data's dtype (native byte order); an empty bin
        gives 0. The ``out=`` buffer when one was given.
    argmax : ndarray [R, C, PH, PW] of int32
        Only with ``return_argmax=True``: ``h * W + w`` of each maximum inside
        its image plane, -1 for an empty bin (or one holding only NaN).

    Raises
    ------
    TypeError
        A dtype that is not accepted (data not float32/float64/float16/
        bfloat16, rois not real numbers).
    ValueError
        Any other bad argument, named in the message (for rois, the first bad
        row): wrong shapes, a batch index outside ``[0, N)``, a non-finite
        coordinate, a bad pooled_size, spatial_scale, num_threads, compat or
        buffer. Arguments are checked in the order of the contract's tables
        (``docs/semantics.md``, "Bad input") before anything is written.
    MemoryError
        An output that cannot be allocated, with its size.

    See Also
    --------
    roi_pooling_backward : the gradient with respect to data.

    Examples
    --------
    >>> import numpy as np, roipool
    >>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    >>> roipool.roi_pooling(x, [[0, 0, 0, 4, 4]], (2, 2), 1.0)[0, 0]
    array([[14., 16.],
           [26., 28.]], dtype=float32)

    The rules differ where the scale's rounding shows: float64 data, scale
    0.7, a box at x = 5 (5 * 0.7 is 3.4999999 through float32, 3.5 in double):

    >>> row = np.arange(8.0).reshape(1, 1, 1, 8)
    >>> box = [[0, 5, 0, 5, 0]]
    >>> int(roipool.roi_pooling(row, box, 1, 0.7)[0, 0, 0, 0])
    3
    >>> int(roipool.roi_pooling(row, box, 1, 0.7, compat="torchvision")[0, 0, 0, 0])
    4
    """
    if out is None and argmax is None and _roi_pool.plain_arrays(data, rois, _MAX_HW,
                                                                 _COMPACT_MIN_N):
        rule = v.check_rule(compat, pooled_size, spatial_scale, data.dtype, _RMODE_NONE)
        call = _plain_call(data, rois, rule, num_threads, return_argmax, _roi_pool.forward)
        return (call.out, call.argmax) if return_argmax else call.out
    call = _call.forward_call(
        data, rois, lambda storage, rmode: v.check_rule(compat, pooled_size, spatial_scale,
                                                        storage, rmode),
        num_threads, out=out, argmax=argmax, want_argmax=return_argmax)
    out, argmax = _call.forward_results(call, _roi_pool.forward(call))
    return (out, argmax) if return_argmax else out


_OK = int(Status.OK)  # a plain int: enum members compare slowly
_COMPACT_MIN_N = a.COMPACT_MIN_N
_MAX_HW = v.MAX_HW
_RMODE_NONE = v.RMODE_NONE
_RMODE_BF16 = int(_roi_pool.Rounding.RMODE_BF16)


def _plain_call(data, rois, rule, num_threads, want_argmax, kernel):
    """An operator's call without out= or argmax= on arrays the kernel takes
    as they are (_roi_pool.plain_arrays, the one rule of when this applies;
    every front end reaches it through the public functions), with its rule
    checked: for such arrays every check of data and rois passes, so checking
    num_threads here keeps the general path's order and errors. A seed-size
    call is mostly this Python. Returns the Call the kernel filled."""
    call = _roi_pool.plain_call(data, rois, rule, v.check_num_threads(num_threads), want_argmax)
    status = kernel(call)
    if status != _OK:
        raise_bad_status(status, rois, data.shape[0], data.dtype)
    return call


def roi_pooling_backward(grad_out, rois, argmax, data_shape, out=None, *, num_threads=None):
    """Gradient of :func:`roi_pooling` with respect to data.

    ``grad[b_r, c, argmax[r, c, ph, pw]] += grad_out[r, c, ph, pw]`` for every
    argmax >= 0, added in ascending (r, ph, pw) order: the result is
    bit-identical for any thread count (``docs/semantics.md``, "Backward").
    The gradient with respect to rois is zero.

    Parameters
    ----------
    grad_out : array_like [R, C, PH, PW], float32, float64, float16 or bfloat16
        Gradient of the forward output.
    rois : array_like [R, 5]
        The ROIs of the forward call; only the batch column is used (it and
        the coordinates' finiteness are checked).
    argmax : array_like [R, C, PH, PW] of any integer dtype
        The forward call's argmax (int32 as returned; an int64 copy works),
        values in ``[-1, H * W)``.
    data_shape : (int, int, int, int)
        ``(N, C, H, W)`` of the forward's data, with C equal to grad_out's.
    out : ndarray of data_shape and grad_out's dtype, optional
        Buffer (C-contiguous or channels-last), overwritten (not added to)
        and returned.
    num_threads : int, optional
        As for :func:`roi_pooling`; the result does not depend on it.

    Returns
    -------
    grad : ndarray of data_shape
        The gradient with respect to data, in grad_out's dtype; the ``out=``
        buffer when one was given.

    Raises
    ------
    TypeError
        grad_out is not a floating-point array.
    ValueError
        A bad argument, named in the message: shapes that disagree, an
        argmax value outside ``[-1, H * W)``, a batch index outside
        ``[0, N)``, a bad buffer or num_threads (``docs/semantics.md``,
        "Bad input" and "Backward").

    Examples
    --------
    >>> import numpy as np, roipool
    >>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    >>> y, am = roipool.roi_pooling(x, [[0, 0, 0, 4, 4]], 2, 1.0, return_argmax=True)
    >>> g = roipool.roi_pooling_backward(np.ones_like(y), [[0, 0, 0, 4, 4]], am, x.shape)
    >>> int(g.sum()), float(g[0, 0, 2, 2])
    (4, 1.0)
    """
    grad_out = a.as_array(grad_out, "grad_out")
    if grad_out.ndim != 4:
        raise ValueError(f"grad_out must be 4-D [R, C, PH, PW], got shape {grad_out.shape}")
    compute, rmode = v.float_kind(grad_out, "grad_out")
    storage = a.storage_dtype(grad_out, rmode)
    shape = v.check_data_shape(data_shape, grad_out.shape[1])
    n_threads = v.check_num_threads(num_threads)
    argmax_in = argmax
    argmax = a.as_array(argmax, "argmax")
    if argmax.shape != grad_out.shape:
        raise ValueError(f"argmax has shape {argmax.shape}, expected grad_out's {grad_out.shape}")
    am, am_checked = v.check_argmax_values(argmax, shape[2] * shape[3], n_threads)
    rois_c = v.check_rois(rois, compute, rmode, storage, R=grad_out.shape[0])
    out_cl = False
    if out is not None:
        out_cl = v.check_buffer(out, "out", shape, storage,
                                (("grad_out", grad_out), ("argmax", argmax_in), ("rois", rois)))
    # The kernel reads grad_out and writes aligned C-contiguous memory in the
    # storage dtype (native byte order; float16/bfloat16 planes are added in a
    # float32 scratch of one channel block per thread); a channels-last,
    # misaligned or byte-swapped out= is filled from a temporary after success. So is any out= while argmax is unchecked: the
    # kernel finds a bad value only after writing, and out= stays untouched
    # on error. (The copy is of grad's size, far less than the pass over
    # argmax it saves when R * PH * PW exceeds N * H * W.)
    kernel_dtype = a.kernel_dtype(storage)
    direct = out is not None and out.dtype == kernel_dtype and not out_cl and out.flags.aligned \
        and am_checked
    k_out, k_n, k_rois, k_grad_data = _call.backward_buffers(out, shape, kernel_dtype, rois_c,
                                                             direct)
    k_grad = a.aligned(a.to_compute(grad_out, kernel_dtype, rmode, storage))
    status = _roi_pool.backward(k_grad, k_rois, am, k_grad_data, rmode, n_threads)
    if status == Status.BAD_ARGMAX:
        v.check_argmax_range(am, shape[2] * shape[3], n_threads)
    if status != Status.OK:
        raise_bad_status(status, rois_c, shape[0], storage)
    return _call.backward_result(out, k_out, storage)


def roi_align(data, rois, pooled_size, spatial_scale, sampling_ratio=-1, aligned=False, out=None,
              *, mode="avg", compat="torchvision", num_threads=None):
    """RoIAlign, exactly as ``torchvision.ops.roi_align`` computes it on CPUs.

    Each output bin is the mean of ``sampling_ratio x sampling_ratio``
    bilinearly interpolated samples of the feature map (docs/semantics.md,
    "RoIAlign").

    Parameters
    ----------
    data : array [N, C, H, W], float32, float64, float16 or bfloat16
        Feature maps; any strides (channels-last is read in place).
    rois : array [R, 5], real
        Rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates;
        converted to data's dtype first.
    pooled_size : int or (int, int)
        Output grid (PH, PW) per ROI.
    spatial_scale : float > 0
        Feature-map size / image size.
    sampling_ratio : int in -1 .. 46340
        Samples per bin side; 0 or -1: ``ceil(roi size / pooled size)``.
    aligned : bool
        Shift coordinates by half a pixel (detectron2's ROIAlignV2, ONNX
        Runtime's ``half_pixel``).
    out : ndarray [R, C, PH, PW], optional
        Buffer to fill (data's dtype, C-contiguous or channels-last); returned.
    mode : {"avg", "max"}
        "max" is ONNX Runtime's max mode (the largest weighted corner of any
        sample), with ``compat="onnxruntime"`` only.
    compat : {"torchvision", "mxnet", "onnxruntime"}
        "mxnet" and "onnxruntime" hold spatial_scale as a float32 (a
        difference in float64 and float16 only).
    num_threads : int, optional
        OpenMP threads for this call; None honours ``OMP_NUM_THREADS`` and
        threadpoolctl limits.

    Returns
    -------
    out : ndarray [R, C, PH, PW]
        The pooled values, in data's dtype (native byte order); a bin without
        samples gives 0. The ``out=`` buffer when one was given.

    Raises
    ------
    TypeError
        A dtype that is not accepted (data not float32/float64/float16/
        bfloat16, rois not real numbers).
    ValueError
        Any other bad argument, named in the message (for rois, the first bad
        row), checked in the order of ``docs/semantics.md`` ("RoIAlign, bad
        input and degenerate boxes") before anything is written.
    MemoryError
        An output or sample table that cannot be allocated.

    See Also
    --------
    roi_align_backward : the gradient with respect to data.

    Examples
    --------
    >>> import numpy as np, roipool
    >>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    >>> roipool.roi_align(x, [[0, 0, 0, 4, 4]], (2, 2), 1.0)[0, 0]
    array([[ 7.,  9.],
           [19., 21.]], dtype=float32)
    """
    def rule_of(storage, rmode):
        return v.check_align_rule(compat, mode, pooled_size, spatial_scale, sampling_ratio,
                                  aligned, storage, rmode)
    if out is None and _roi_pool.plain_arrays(data, rois, _MAX_HW, _COMPACT_MIN_N):
        return _plain_call(data, rois, rule_of(data.dtype, _RMODE_NONE), num_threads, False,
                           _roi_pool.align_forward).out
    call = _call.forward_call(data, rois, rule_of, num_threads, out=out,
                              rows_rmode=_align_rows_rmode, native=True)
    return _call.forward_results(call, _roi_pool.align_forward(call))[0]


def _align_rows_rmode(rmode):
    """RoIAlign's rows go to its arithmetic type: float16 for float16 data,
    float32 (not through bfloat16) for bfloat16 data."""
    return v.RMODE_NONE if rmode == _RMODE_BF16 else rmode


def roi_align_backward(grad_out, rois, data_shape, spatial_scale, sampling_ratio=-1,
                       aligned=False, out=None, *, compat="torchvision", num_threads=None):
    """Gradient of :func:`roi_align` (avg mode) with respect to data.

    Every sample adds ``grad_out * w_i / count`` at its four corners, in
    torchvision's serial order (ROIs ascending, then bins, samples and
    corners): the result equals torchvision's CPU backward bit for bit for
    any thread count. The gradient with respect to rois is zero.

    Parameters
    ----------
    grad_out : array [R, C, PH, PW], float
    rois : array [R, 5], the ROIs of the forward call
    data_shape : (N, C, H, W)
    spatial_scale, sampling_ratio, aligned, compat : as for :func:`roi_align`
    out : ndarray of data_shape and grad_out's dtype, optional; filled and returned
    num_threads : int, optional

    Returns
    -------
    grad : ndarray of data_shape
        The gradient with respect to data, in grad_out's dtype (native byte
        order). The ``out=`` buffer when one was given.

    Raises
    ------
    TypeError
        grad_out not a float array, rois not real numbers.
    ValueError
        Any other bad argument, named in the message (for rois, the first bad
        row), checked in the order of ``docs/semantics.md`` ("RoIAlign, bad
        input and degenerate boxes") before anything is written.
    MemoryError
        An output or sample table that cannot be allocated.

    Examples
    --------
    >>> import numpy as np, roipool
    >>> g = roipool.roi_align_backward(np.ones((1, 1, 2, 2), np.float32),
    ...                                [[0, 0, 0, 4, 4]], (1, 1, 8, 6), 1.0)
    >>> float(g.sum()), float(g[0, 0, 1, 1])
    (4.0, 0.25)
    """
    grad_out = a.as_array(grad_out, "grad_out")
    if grad_out.ndim != 4:
        raise ValueError(f"grad_out must be 4-D [R, C, PH, PW], got shape {grad_out.shape}")
    compute, rmode = v.float_kind(grad_out, "grad_out")
    storage = a.kernel_dtype(a.storage_dtype(grad_out, rmode))
    shape = v.check_data_shape(data_shape, grad_out.shape[1])
    compat = v.check_align_compat(compat)
    scale = v.check_align_scale(spatial_scale, compat, storage, rmode)
    sr = v.check_sampling_ratio(sampling_ratio, grad_out.shape[2] * grad_out.shape[3])
    aligned = v.check_aligned(aligned)
    n_threads = v.check_num_threads(num_threads)
    rois_c = v.check_rois(rois, compute, _align_rows_rmode(rmode), storage, R=grad_out.shape[0])
    out_cl = False
    if out is not None:
        out_cl = v.check_buffer(out, "out", shape, storage,
                                (("grad_out", grad_out), ("rois", rois)))
    kernel_dtype = a.kernel_dtype(storage)
    direct = out is not None and out.dtype == kernel_dtype and not out_cl and out.flags.aligned
    k_out, _, k_rois, k_grad_data = _call.backward_buffers(out, shape, kernel_dtype, rois_c,
                                                             direct)
    k_grad = a.aligned(a.to_compute(grad_out, kernel_dtype, rmode, storage))
    rule = _roi_pool.AlignRule(scale, scale, compat == "torchvision", rmode, grad_out.shape[2],
                               grad_out.shape[3])
    rule.aligned, rule.sampling = aligned, sr
    status = _roi_pool.align_backward(k_grad, k_rois, k_grad_data, rule, n_threads)
    if status != Status.OK:
        raise_bad_status(status, rois_c, shape[0], storage)
    return _call.backward_result(out, k_out, storage)
