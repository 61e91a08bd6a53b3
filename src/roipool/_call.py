"""One forward call, validated once: the arguments every operator shares
(data, rois, its rule, num_threads, out=) checked in the order of
docs/semantics.md, "Bad input", and turned into the call object the
extension consumes (_roi_pool.Call: arrays in kernel form, rule, output
buffers, thread count); then the results handed back in the caller's dtype
and buffers. An operator supplies its rule and its kernel entry point
(CONTRIBUTING.md, "How to add an operator")."""
from roipool import _arrays as a
from roipool import _roi_pool
from roipool import _validate as v
from roipool._status import raise_bad_status

_OK = int(_roi_pool.Status.OK)  # a plain int: enum members compare slowly


class ForwardCall(_roi_pool.Call):
    """_roi_pool.Call and, in `after`, what the Python layer needs once the
    kernel ran: (storage dtype, checked rois, batch size) to name a bad row,
    the caller's out and argmax, the output layout (one tuple: one attribute
    to set and read on a small call)."""

    __slots__ = ("after",)


def forward_call(data, rois, rule_of, num_threads, out=None, argmax=None, want_argmax=False,
                 rows_rmode=None, native=False):
    """The ForwardCall of an operator's call. rule_of(storage, rmode) checks
    the operator's own arguments and returns its _roi_pool.Rule; argmax= and
    want_argmax are for operators with an argmax output. rows_rmode(rmode):
    the rounding rois go through on their way to the compute type (default:
    the data's); native: results in native byte order."""
    data, compute, rmode = v.check_data(data)
    storage = a.storage_dtype(data, rmode)
    if native:
        storage = a.kernel_dtype(storage)
    rule = rule_of(storage, rmode)
    n_threads = v.check_num_threads(num_threads)
    rois_c = v.check_rois(rois, compute, rmode if rows_rmode is None else rows_rmode(rmode),
                          storage)
    shape = (rois_c.shape[0], data.shape[1]) + rule.pooled
    avoid = (("data", data), ("rois", rois))
    # The output follows the input's memory format unless out= says otherwise.
    out_cl = a.is_channels_last(data)
    if out is not None:
        out_cl = v.check_buffer(out, "out", shape, storage, avoid)
    argmax_cl = out_cl
    if argmax is not None:
        argmax_cl = v.check_buffer(argmax, "argmax", shape, v.INT32, avoid + (("out", out),))
    # The kernel reads data and writes aligned memory in the storage dtype
    # (float16/bfloat16 too, converted in registers), native byte order; a
    # misaligned or byte-swapped out=/argmax= is filled from a temporary
    # after success.
    kernel_dtype = a.kernel_dtype(storage)
    if out is not None and out.flags.aligned and out.dtype == kernel_dtype:
        k_out = out
    else:
        k_out = a.new_output(shape, kernel_dtype, "out", out_cl)
    k_arg = argmax
    if (k_arg is None and want_argmax) or (k_arg is not None and not k_arg.flags.aligned):
        k_arg = a.new_output(shape, v.INT32, "argmax", argmax_cl)
    k_data, k_rois = data, rois_c
    compact = a.compact_batch(data.shape, data.strides[0], rois_c)
    if compact is not None:  # a huge broadcast batch: only the images used
        n_used, k_rois = compact
        k_data = data[:n_used]
    if k_data.dtype != kernel_dtype:
        k_data = a.to_compute(k_data, kernel_dtype, rmode, storage, False)
    call = ForwardCall(a.aligned(k_data), k_rois, rule, k_out, k_arg, n_threads)
    call.after = (storage, rois_c, data.shape[0], out, argmax, out_cl)
    return call


def forward_results(call, status):
    """(out, argmax) of a call the kernel ran with this status: the caller's
    buffers filled, or new outputs in the storage dtype; a bad status raises
    its exception (no buffer of the caller's written)."""
    storage, rois_c, batch, out, argmax, out_cl = call.after
    if status != _OK:
        raise_bad_status(status, rois_c, batch, storage)
    k_out, k_arg = call.out, call.argmax
    if out is None:
        if k_out.dtype != storage:
            k_out = a.in_storage_dtype(k_out, storage, out_cl)
        out = k_out
    elif k_out is not out:
        out[...] = k_out
    if argmax is not None and k_arg is not argmax:
        argmax[...] = k_arg
        k_arg = argmax
    return out, k_arg


def backward_buffers(out, shape, kernel_dtype, rois_c, direct):
    """A backward's kernel buffers: (k_out, the batch size and rows the
    kernel takes, the gradient it writes). The kernel writes out= itself when
    `direct` (the caller's buffer as the kernel wants it), else a new array;
    a huge batch of empty images is compacted to the images the rows use."""
    k_out = out if out is not None and direct else a.new_output(shape, kernel_dtype, "out")
    compact = a.compact_batch(shape, None, rois_c)
    if compact is None:
        return k_out, shape[0], rois_c, k_out
    k_n, k_rois = compact  # empty images: only the ROI checks run
    return k_out, k_n, k_rois, a.new_output((k_n,) + tuple(shape[1:]), kernel_dtype, "out")


def backward_result(out, k_out, storage):
    """The gradient a backward returns: out= filled, or k_out in the storage
    dtype."""
    if out is not None:
        if k_out is not out:
            out[...] = k_out
        return out
    if k_out.dtype != storage:
        return a.in_storage_dtype(k_out, storage)
    return k_out
