"""The peers: which are installed, and how each is built for a workload."""

def load_peers(which):
    """{"torchvision": (torch, torchvision) or None, "ort": (ort, onnx) or None}
    plus the reason a peer is missing. `which`: "auto" or a comma list of
    torchvision, ort, or "none"."""
    wanted = {"torchvision", "ort"} if which == "auto" else \
        set() if which == "none" else set(which.split(","))
    unknown = wanted - {"torchvision", "ort"}
    if unknown:
        raise SystemExit(f"unknown peer(s) {sorted(unknown)}; use torchvision, ort, auto or none")
    peers, why = {"torchvision": None, "ort": None}, {}
    if "torchvision" in wanted:
        try:
            import torch
            import torchvision
            import torchvision.ops  # noqa: F401  (registers torch.ops.torchvision.*)
            torch.ops.torchvision.roi_pool  # noqa: B018  (the compiled op is present)
            torch.ops.torchvision._roi_pool_backward  # noqa: B018
            peers["torchvision"] = (torch, torchvision)
        except Exception as e:  # ImportError, OSError from a broken wheel, missing op
            why["torchvision"] = f"{type(e).__name__}: {e}"
    else:
        why["torchvision"] = "not requested"
    if "ort" in wanted:
        try:
            import onnx
            import onnxruntime as ort
            peers["ort"] = (ort, onnx)
        except Exception as e:
            why["ort"] = f"{type(e).__name__}: {e}"
    else:
        why["ort"] = "not requested"
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

