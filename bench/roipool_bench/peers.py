"""The peers: which are installed, and how each is built for a workload."""
import contextlib
import ctypes
import os
import sys

import numpy as np


NAMES = ("torchvision", "ort", "opencv", "openvino")


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


class _SignalStack(ctypes.Structure):  # Linux stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def _keeps_signal_stack():
    """Puts the calling thread's alternate signal stack back afterwards.
    OpenVINO's CPU plugin installs one of its own in the thread that loads
    it and frees it later; the next signal handled on it (a SIGCHLD, with
    torch's DataLoader handler installed) kills the process with SIGSEGV, as
    it killed a whole pytest run after the harness's OpenVINO checks."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved = _SignalStack()
    libc.sigaltstack(None, ctypes.byref(saved))
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(saved), None)


def _import_openvino():
    # OpenVINO's TBB dlopens a library with RTLD_DEEPBIND, and the sanitizer
    # runtime answers that by ending the process (tools/asan.sh's runs).
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        raise ImportError("OpenVINO cannot load under AddressSanitizer (RTLD_DEEPBIND)")
    import openvino as ov
    from openvino import opset2  # noqa: F401  (the ROIPooling-1 builder)
    with _keeps_signal_stack():
        ov.Core().get_versions("CPU")  # the CPU plugin is present
    return ov


def load_peers(which):
    """{"torchvision": (torch, torchvision), "ort": (ort, onnx), "opencv": cv2,
    "openvino": openvino, each None when not run} plus the reason a peer is
    missing. `which`: "auto" or a comma list of torchvision, ort, opencv,
    openvino, or "none"."""
    wanted = set(NAMES) if which == "auto" else \
        set() if which == "none" else set(which.split(","))
    unknown = wanted - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown peer(s) {sorted(unknown)}; use {', '.join(NAMES)}, "
                         "auto or none")
    loaders = {"torchvision": _import_torchvision, "ort": _import_ort, "opencv": _import_opencv,
               "openvino": _import_openvino}
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


# OpenVINO's INFERENCE_PRECISION_HINT for each mode the benchmark runs
OPENVINO_PRECISION = {"f32": "f32", "bf16": "bf16"}


def openvino_model(ov, data_shape, rois_shape, pooled, scale, precision, threads):
    """OpenVINO's CPU plugin running one opset-2 ROIPooling node (method
    "max"), float32 inputs and output, compiled for `precision` ("f32", or
    "bf16": inputs rounded to bfloat16 inside, the result widened back) and
    `threads` (INFERENCE_NUM_THREADS). Returns (compiled model, the precision
    the plugin reports it runs in: a CPU without bfloat16 falls back to f32).
    Run it with openvino_run."""
    from openvino import opset2

    x = opset2.parameter(list(data_shape), np.float32, name="X")
    r = opset2.parameter(list(rois_shape), np.float32, name="rois")
    y = opset2.roi_pooling(x, r, output_roi=list(pooled), spatial_scale=float(scale),
                           method="max")
    model = ov.Model([y], [x, r], "roipool_bench")
    with _keeps_signal_stack():
        compiled = ov.Core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision],
            "INFERENCE_NUM_THREADS": int(threads)})
    return compiled, compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def openvino_run(compiled, data, rois):
    """One inference; the output is a new array (like the other peers')."""
    with _keeps_signal_stack():
        return compiled([data, rois])[0]


def openvino_bins_differ(data_shape, rois, pooled, scale):
    """Bool [R, PH, PW]: the bins whose bounds OpenVINO computes differently.

    OpenVINO's ROIPooling (CPU plugin and reference) rounds the corners as
    the rule does (float32 product, C round), but takes the bin bounds in
    integer arithmetic, floor(ph * roi_h / PH) and ceil((ph + 1) * roi_h /
    PH), where the rule (MXNet's) computes floor(ph * bin_h) and ceil((ph + 1)
    * bin_h) with bin_h = roi_h / PH rounded to float32: when (ph + 1) * bin_h
    rounds above an integer the rule's bin takes one more row or column. The
    rule's bounds come from the kernel's own bin_bounds; OpenVINO's are
    computed here from the same corners."""
    from roipool import _roi_pool
    from roipool._roi_pool import Status
    from roipool._validate import RMODE_NONE, check_rule

    N, C, H, W = data_shape
    PH, PW = pooled
    r = np.ascontiguousarray(rois, dtype=np.float32)
    geom = np.empty((len(r), 1 + 2 * PH + 2 * PW), np.intp)
    rule = check_rule("mxnet", (PH, PW), scale, None, RMODE_NONE)
    status = _roi_pool.bin_bounds(r, rule, N, H, W, geom)
    if status != Status.OK:
        raise ValueError(f"invalid ROIs (status {status})")
    # the corners as the rule rounds them: C round() of the float32 product
    prod = (r[:, 1:5] * np.float32(scale)).astype(np.float64)  # + 0.5 is exact in float64
    corners = (np.sign(prod) * np.floor(np.abs(prod) + 0.5)).astype(np.int64)
    x1, y1, x2, y2 = corners.T

    def integer_bounds(start, end, n, size):
        extent = np.maximum(end - start + 1, 1)[:, None]
        k = np.arange(n)[None, :]
        lo = (k * extent) // n  # floor
        hi = -((-(k + 1) * extent) // n)  # ceil
        return (np.clip(lo + start[:, None], 0, size), np.clip(hi + start[:, None], 0, size))

    hs, he = integer_bounds(y1, y2, PH, H)
    ws, we = integer_bounds(x1, x2, PW, W)
    rule_hs, rule_he = geom[:, 1:1 + PH], geom[:, 1 + PH:1 + 2 * PH]
    rule_ws, rule_we = geom[:, 1 + 2 * PH:1 + 2 * PH + PW], geom[:, 1 + 2 * PH + PW:]
    rows = (hs != rule_hs) | (he != rule_he)
    cols = (ws != rule_ws) | (we != rule_we)
    return rows[:, :, None] | cols[:, None, :]
