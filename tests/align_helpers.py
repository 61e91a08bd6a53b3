"""Shared by the RoIAlign tests: random cases, and the two peers called the way
docs/semantics.md ("RoIAlign: where frameworks differ") maps their arguments.

Shapes stay small: roipool._reference.roi_align is a plain loop."""
import numpy as np

SCALES = (1.0, 0.5, 0.7, 1 / 16, 0.3)
RATIOS = (-1, 0, 1, 2, 3)


def align_case(rng, dtype, scale=1.0, N=2, C=3, H=9, W=11, R=6, flips=True):
    """data [N, C, H, W] standard normal and R rows in image coordinates (the map
    over `scale`): boxes inside, across the edges, outside, and (flips) a few
    with x2 < x1 or y2 < y1. Both in `dtype` (torchvision wants them equal)."""
    with np.errstate(over="ignore"):
        data = rng.standard_normal((N, C, H, W)).astype(dtype)
        image = np.array([W, H], np.float64) / scale
        lo = rng.uniform(-0.2, 1.0, (R, 2)) * image
        size = rng.uniform(-0.1 if flips else 0.0, 0.8, (R, 2)) * image
        rois = np.column_stack([rng.integers(0, N, R), lo, lo + size]).astype(dtype)
    return data, rois


def tv_forward(tv_ops, torch, data, rois, pooled, scale, ratio, aligned):
    return tv_ops.roi_align(torch.from_numpy(np.ascontiguousarray(data)),
                            torch.from_numpy(np.ascontiguousarray(rois)),
                            pooled, scale, ratio, aligned).numpy()


def tv_backward(tv_ops, torch, data, rois, grad_out, pooled, scale, ratio, aligned):
    x = torch.from_numpy(np.ascontiguousarray(data)).requires_grad_()
    y = tv_ops.roi_align(x, torch.from_numpy(np.ascontiguousarray(rois)), pooled, scale,
                         ratio, aligned)
    y.backward(torch.from_numpy(np.ascontiguousarray(grad_out)))
    return x.grad.numpy()


def ort_session(ort, dtype, pooled, scale, ratio, aligned, mode="avg", opset=16, threads=1):
    """An ONNX Runtime session holding one RoiAlign node. opset 10 has no
    coordinate_transformation_mode (it is aligned=False)."""
    from onnx import TensorProto, helper

    et = TensorProto.FLOAT if np.dtype(dtype) == np.float32 else TensorProto.DOUBLE
    attrs = dict(output_height=pooled[0], output_width=pooled[1], spatial_scale=float(scale),
                 sampling_ratio=max(ratio, 0), mode=mode)
    if opset >= 16:
        attrs["coordinate_transformation_mode"] = "half_pixel" if aligned else "output_half_pixel"
    node = helper.make_node("RoiAlign", ["X", "rois", "batch_indices"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "roi_align",
        [helper.make_tensor_value_info("X", et, None),
         helper.make_tensor_value_info("rois", et, None),
         helper.make_tensor_value_info("batch_indices", TensorProto.INT64, None)],
        [helper.make_tensor_value_info("Y", et, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3  # its max-mode warning on every session
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def ort_run(session, data, rois):
    rois = np.asarray(rois)
    return session.run(None, {"X": np.ascontiguousarray(data),
                              "rois": np.ascontiguousarray(rois[:, 1:]),
                              "batch_indices": rois[:, 0].astype(np.int64)})[0]
