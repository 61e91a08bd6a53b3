"""roipool's operators in ONNX: the standard ``MaxRoiPool`` and ``RoiAlign`` nodes.

``MaxRoiPool`` keeps ``spatial_scale`` as a float32 attribute and (in
onnxruntime) computes in float32: that is roipool's rule for float32 tensors
under either compat (torchvision rounds the scale to the tensor's dtype too).
No ONNX runtime offers it for another dtype, so exporting a float64, float16 or
bfloat16 call raises instead of recording a model whose numbers would differ.

``roi_align`` becomes ``RoiAlign`` of opset 16 (mode "avg"): the rows are split
into ``rois[:, 1:]`` and their batch indices cast to int64 (truncation, as
roipool's rule takes them), ``aligned`` is ``coordinate_transformation_mode``
"half_pixel" and not aligned "output_half_pixel", and ``sampling_ratio`` -1
is written as 0 (both mean adaptive in torchvision and roipool; ONNX's
attribute must be >= 0). ONNX Runtime computes it with roipool's rule
(``compat="onnxruntime"``: the scale a float32) in float32 and float64. What
ONNX cannot express, and so raises at export: float16 and bfloat16 (ONNX
Runtime has no kernel for them, and ONNX does not say in which type a float16
RoiAlign rounds), and a float64 call with ``compat="torchvision"`` at a scale
that is not a float32 number (0.7, 0.3: torchvision carries it as a double,
ONNX as a float32 attribute). An aligned box flipped on one axis with adaptive
sampling, 0 in roipool, makes ONNX Runtime fail at run time.
"""
import math

import numpy as np
import torch

OPSET = 7  # MaxRoiPool exists since opset 1; 7 is the oldest the exporters still write
_OPS = ("roi_pool", "roi_pool_forward", "roi_pool_with_argmax")
ALIGN_OPSET = 16  # RoiAlign's coordinate_transformation_mode (aligned) is opset 16's
_FLOAT32 = ("Float", "FLOAT", "float32")
_FLOAT64 = ("Double", "DOUBLE", "float64")


def _check_node_args(node, spatial_scale, pooled_height, pooled_width):
    """The scale and output size every pooling node needs, or RuntimeError."""
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise RuntimeError(f"roipool.torch: spatial_scale must be a finite number > 0 for "
                           f"{node}, got {spatial_scale}")
    if pooled_height < 1 or pooled_width < 1:
        raise RuntimeError(f"roipool.torch: output_size must be positive for {node}, got "
                           f"({pooled_height}, {pooled_width})")


def _check(dtype_name, spatial_scale, pooled_height, pooled_width):
    """dtype_name: the input's element type as the exporter knows it (None if unknown)."""
    if dtype_name not in _FLOAT32:
        raise RuntimeError(
            f"roipool.torch: ONNX export needs a float32 input: ONNX's MaxRoiPool computes in "
            f"float32 only, so a {dtype_name or 'unknown-dtype'} roi_pool would export with "
            f"other numbers (cast the feature map to float32 before pooling)")
    _check_node_args("MaxRoiPool", spatial_scale, pooled_height, pooled_width)


def _check_align(dtype_name, spatial_scale, pooled_height, pooled_width, sampling_ratio,
                 compat):
    """The RoiAlign attributes (sampling_ratio, coordinate mode) roipool's call
    means, or RuntimeError where ONNX cannot express it."""
    if dtype_name not in _FLOAT32 + _FLOAT64:
        raise RuntimeError(
            f"roipool.torch: ONNX export of roi_align needs a float32 or float64 input: ONNX "
            f"Runtime has no {dtype_name or 'unknown-dtype'} RoiAlign, and ONNX does not say "
            f"how one would round (cast the feature map to float32 before pooling)")
    _check_node_args("RoiAlign", spatial_scale, pooled_height, pooled_width)
    if sampling_ratio < -1:
        raise RuntimeError(f"roipool.torch: sampling_ratio must be >= -1, got {sampling_ratio}")
    if (dtype_name in _FLOAT64 and compat == "torchvision"
            and float(np.float32(spatial_scale)) != spatial_scale):
        raise RuntimeError(
            f"roipool.torch: a float64 roi_align with compat='torchvision' carries "
            f"spatial_scale={spatial_scale!r} as a double; ONNX's RoiAlign holds it as a "
            f"float32, so the exported model would give other numbers. Export with "
            f"compat='onnxruntime' (ONNX Runtime's numbers), a float32 input, or a scale "
            f"that is a float32 number")
    return max(sampling_ratio, 0)


def _align_mode(aligned):
    return "half_pixel" if aligned else "output_half_pixel"


def _legacy_align_symbolic(g, input, rois, spatial_scale, pooled_height, pooled_width,
                           sampling_ratio, aligned, compat, num_threads):
    sr = _check_align(input.type().scalarType(), spatial_scale, pooled_height, pooled_width,
                      sampling_ratio, compat)
    rois = g.op("CastLike", rois, input)
    boxes = g.op("Slice", rois, g.op("Constant", value_t=torch.tensor([1])),
                 g.op("Constant", value_t=torch.tensor([5])),
                 g.op("Constant", value_t=torch.tensor([1])))
    batch = g.op("Cast", g.op("Gather", rois, g.op("Constant", value_t=torch.tensor(0)),
                              axis_i=1), to_i=7)  # 7: TensorProto.INT64
    return g.op("RoiAlign", input, boxes, batch, output_height_i=pooled_height,
                output_width_i=pooled_width, sampling_ratio_i=sr,
                spatial_scale_f=spatial_scale, mode_s="avg",
                coordinate_transformation_mode_s=_align_mode(aligned))


def _legacy_symbolic(with_argmax):
    from torch.onnx.symbolic_helper import parse_args

    @parse_args("v", "v", "f", "i", "i", "s", "i")
    def symbolic(g, input, rois, spatial_scale, pooled_height, pooled_width, compat,
                 num_threads):
        _check(input.type().scalarType(), spatial_scale, pooled_height, pooled_width)
        if rois.type().scalarType() != "Float":
            rois = g.op("Cast", rois, to_i=1)  # 1: TensorProto.FLOAT
        out = g.op("MaxRoiPool", input, rois, pooled_shape_i=(pooled_height, pooled_width),
                   spatial_scale_f=spatial_scale)
        return (out, None) if with_argmax else out

    return symbolic


def register_legacy_symbolic():
    """Lets ``torch.onnx.export(..., dynamo=False)`` write MaxRoiPool."""
    from torch.onnx import register_custom_op_symbolic

    for name in _OPS:
        register_custom_op_symbolic(f"roipool::{name}",
                                    _legacy_symbolic(name == "roi_pool_with_argmax"), OPSET)
    from torch.onnx.symbolic_helper import parse_args
    register_custom_op_symbolic("roipool::roi_align",
                                parse_args("v", "v", "f", "i", "i", "i", "b", "s", "i")(
                                    _legacy_align_symbolic), ALIGN_OPSET)


def onnx_translation_table():
    """The translations ``torch.onnx.export(..., dynamo=True)`` needs for roipool.

    Pass them as ``custom_translation_table``::

        torch.onnx.export(model, args, "model.onnx", dynamo=True,
                          custom_translation_table=roipool.torch.onnx_translation_table())

    Each roipool operator becomes one ``MaxRoiPool`` node (float32 only), and
    ``roi_align`` one ``RoiAlign`` node of opset 16 (float32, float64; see
    this module's docstring). Needs the ``onnxscript`` package.

    Returns
    -------
    dict
        From each of roipool's operators to its onnxscript translation.

    Raises
    ------
    ImportError
        onnxscript is not installed. (Exporting a pool that ONNX cannot
        express with roipool's numbers, e.g. float64, raises at export; bad
        input is the contract's, ``docs/semantics.md``, "Bad input".)

    Examples
    --------
    >>> import roipool.torch
    >>> table = roipool.torch.onnx_translation_table()
    >>> sorted(op.name() for op in table)
    ['roipool::roi_align', 'roipool::roi_pool', 'roipool::roi_pool_forward', 'roipool::roi_pool_with_argmax']
    """
    from onnxscript import opset18 as op

    def _pool(input, rois, spatial_scale, pooled_height, pooled_width):
        dtype = getattr(input, "dtype", None)
        _check(None if dtype is None else getattr(dtype, "name", str(dtype)), spatial_scale,
               pooled_height, pooled_width)
        rois = op.CastLike(rois, input)
        return op.MaxRoiPool(input, rois, pooled_shape=[pooled_height, pooled_width],
                             spatial_scale=spatial_scale)

    def roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                 compat: str = "torchvision", num_threads: int = -1):
        return _pool(input, rois, spatial_scale, pooled_height, pooled_width)

    def roi_pool_with_argmax(input, rois, spatial_scale: float, pooled_height: int,
                             pooled_width: int, compat: str = "torchvision",
                             num_threads: int = -1):
        raise RuntimeError(
            "roipool.torch: ONNX has no argmax output for MaxRoiPool; export the model in "
            "eval mode under torch.no_grad() (inference), where roi_pool needs no argmax")

    def roi_align(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int,
                  sampling_ratio: int = -1, aligned: bool = False,
                  compat: str = "torchvision", num_threads: int = -1):
        dtype = getattr(input, "dtype", None)
        sr = _check_align(None if dtype is None else getattr(dtype, "name", str(dtype)),
                          spatial_scale, pooled_height, pooled_width, sampling_ratio, compat)
        rois = op.CastLike(rois, input)
        boxes = op.Slice(rois, [1], [5], [1])
        batch = op.Cast(op.Gather(rois, 0, axis=1), to=7)  # 7: TensorProto.INT64
        return op.RoiAlign(input, boxes, batch, output_height=pooled_height,
                           output_width=pooled_width, sampling_ratio=sr,
                           spatial_scale=spatial_scale, mode="avg",
                           coordinate_transformation_mode=_align_mode(aligned))

    ops = torch.ops.roipool
    return {ops.roi_pool.default: roi_pool, ops.roi_pool_forward.default: roi_pool,
            ops.roi_pool_with_argmax.default: roi_pool_with_argmax,
            ops.roi_align.default: roi_align}
