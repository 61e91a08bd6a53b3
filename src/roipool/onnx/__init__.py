"""ONNX models with MaxRoiPool or RoiAlign at roipool's speed:
``roipool.onnx.InferenceSession`` is ``onnxruntime.InferenceSession`` with every
top-level float32 ``MaxRoiPool`` node and every float32 or float64 ``RoiAlign``
node (opset 10 and 16, avg and max) computed by roipool and the rest of the
graph in ONNX Runtime.

::

    import roipool.onnx as ort                # instead of: import onnxruntime as ort
    sess = ort.InferenceSession("frcnn.onnx")
    sess.run(None, {"image": image, "rois": rois})

(:class:`InferenceSession` has a complete example.)

The graph is cut at the pools once, at construction: the parts between them
are ONNX Runtime sessions, the pools roipool calls, and tensors go from one
to the next as NumPy arrays without copies. The outputs are plain ONNX
Runtime's bit for bit. A pool inside an If/Loop/Scan body or a function, on
another type than float32, or in a session with other execution providers
than the CPU's stays on ONNX Runtime's own kernel; a model without such a
pool is one plain ONNX Runtime session. Needs ``pip install 'roipool[onnx]'``
(onnx and onnxruntime); ``import roipool`` alone never imports either.
"""
try:
    import onnx as _onnx  # noqa: F401
    import onnxruntime as _onnxruntime  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"roipool.onnx needs the onnx and onnxruntime packages ({exc.name or exc} is "
        f"missing): pip install 'roipool[onnx]'") from exc

from roipool.onnx._session import InferenceSession, ModelMetadata, NodeArg

__all__ = ["InferenceSession", "ModelMetadata", "NodeArg"]
