"""roipool's operators in ONNX: the standard ``MaxRoiPool`` node.

``MaxRoiPool`` keeps ``spatial_scale`` as a float32 attribute and (in
onnxruntime) computes in float32: that is roipool's rule for float32 tensors
under either compat (torchvision rounds the scale to the tensor's dtype too).
No ONNX runtime offers it for another dtype, so exporting a float64, float16 or
bfloat16 call raises instead of recording a model whose numbers would differ.
"""
import math

import torch

OPSET = 7  # MaxRoiPool exists since opset 1; 7 is the oldest the exporters still write
_OPS = ("roi_pool", "roi_pool_forward", "roi_pool_with_argmax")


def _check(dtype_name, spatial_scale, pooled_height, pooled_width):
    """dtype_name: the input's element type as the exporter knows it (None if unknown)."""
    if dtype_name not in ("Float", "FLOAT", "float32"):
        raise RuntimeError(
            f"roipool.torch: ONNX export needs a float32 input: ONNX's MaxRoiPool computes in "
            f"float32 only, so a {dtype_name or 'unknown-dtype'} roi_pool would export with "
            f"other numbers (cast the feature map to float32 before pooling)")
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise RuntimeError(f"roipool.torch: spatial_scale must be a finite number > 0 for "
                           f"MaxRoiPool, got {spatial_scale}")
    if pooled_height < 1 or pooled_width < 1:
        raise RuntimeError(f"roipool.torch: output_size must be positive for MaxRoiPool, got "
                           f"({pooled_height}, {pooled_width})")


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


def onnx_translation_table():
    """The translations ``torch.onnx.export(..., dynamo=True)`` needs for roipool.

    Pass them as ``custom_translation_table``::

        torch.onnx.export(model, args, "model.onnx", dynamo=True,
                          custom_translation_table=roipool.torch.onnx_translation_table())

    Each roipool operator becomes one ``MaxRoiPool`` node (float32 only: see
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
    ['roipool::roi_pool', 'roipool::roi_pool_forward', 'roipool::roi_pool_with_argmax']
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

    ops = torch.ops.roipool
    return {ops.roi_pool.default: roi_pool, ops.roi_pool_forward.default: roi_pool,
            ops.roi_pool_with_argmax.default: roi_pool_with_argmax}
