"""The peers: which are installed, and how each is built for a workload."""
import numpy as np


NAMES = ("torchvision", "ort", "opencv")


def _import_torchvision():
    import torch
    import torchvision
    import torchvision.ops  # noqa: F401  (registers torch.ops.torchvision.*)
    torch.ops.torchvision.roi_pool  # noqa: B018  (the compiled op is present)
    torch.ops.torchvision._roi_pool_backward  # noqa: B018
    return torch, torchvision


def _import_ort():
    import onnx
    import onnxruntime as ort
    return ort, onnx


def _import_opencv():
    import cv2
    cv2.dnn.readNetFromCaffe  # noqa: B018  (built with the dnn module)
    return cv2


def load_peers(which):
    """{"torchvision": (torch, torchvision), "ort": (ort, onnx), "opencv": cv2,
    each None when not run} plus the reason a peer is missing. `which`:
    "auto" or a comma list of torchvision, ort, opencv, or "none"."""
    wanted = set(NAMES) if which == "auto" else \
        set() if which == "none" else set(which.split(","))
    unknown = wanted - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown peer(s) {sorted(unknown)}; use {', '.join(NAMES)}, "
                         "auto or none")
    loaders = {"torchvision": _import_torchvision, "ort": _import_ort, "opencv": _import_opencv}
    peers, why = dict.fromkeys(NAMES), {}
    for name in NAMES:
        if name not in wanted:
            why[name] = "not requested"
            continue
        try:
            peers[name] = loaders[name]()
        except Exception as e:  # ImportError, OSError from a broken wheel, missing op
            why[name] = f"{type(e).__name__}: {e}"
    return peers, why


def ort_model_bytes(onnx, data_shape, rois_shape, pooled, scale):
    """A one-node ONNX model: Y = MaxRoiPool(X, rois). Returns (bytes, opset)."""
    from onnx import TensorProto, helper

    node = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"],
                            pooled_shape=list(pooled), spatial_scale=float(scale))
    graph = helper.make_graph(
        [node], "roipool_bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(data_shape)),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, list(rois_shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                                       [rois_shape[0], data_shape[1], *pooled])])
    # MaxRoiPool-1 (unchanged rule in MaxRoiPool-22). Opset 13 avoids ORT's
    # "opset < 7" warning and is supported by every current ORT.
    opset = 13
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), opset


def ort_session(ort, model_bytes, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])



def opencv_net(cv2, data_shape, n_rois, pooled, scale):
    """OpenCV dnn's Caffe ROIPooling layer as a one-layer net (prototxt
    only: the layer has no weights), OpenCV backend on the CPU. Run it with
    opencv_run; the thread count is the global cv2.setNumThreads."""
    N, C, H, W = data_shape
    prototxt = f"""name: "roipool_bench"
input: "data"
input_shape {{ dim: {N} dim: {C} dim: {H} dim: {W} }}
input: "rois"
input_shape {{ dim: {n_rois} dim: 5 }}
layer {{
  name: "pool"  type: "ROIPooling"  bottom: "data"  bottom: "rois"  top: "pool"
  roi_pooling_param {{ pooled_h: {pooled[0]} pooled_w: {pooled[1]} spatial_scale: {scale!r} }}
}}
"""
    net = cv2.dnn.readNetFromCaffe(np.frombuffer(prototxt.encode(), np.uint8))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def opencv_run(net, data, rois):
    net.setInput(data, "data")
    net.setInput(rois, "rois")
    return net.forward()
