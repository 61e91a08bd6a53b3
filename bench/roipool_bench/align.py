"""The RoIAlign workloads of WORKLOADS.md ("RoIAlign workloads"), their
sample counts, the peers built for RoIAlign, and the per-core limit.

Kept beside the RoIPool machinery (bench/roipool_bench/) and used by
bench/bench_align.py."""
import os

import numpy as np

from roipool import _reference as ref
from roipool import _workloads as wl

# The workloads are defined once, in roipool._workloads (ALIGN_WORKLOADS,
# make_align; `python -m roipool` times fpn-p2 from there); tiny-align is the
# seed example through RoIAlign.
WORKLOADS = [*wl.ALIGN_WORKLOADS, "tiny-align"]


def make(name, dtype=np.float32):
    """(data, rois, pooled, scale, sampling_ratio, aligned) of a workload."""
    if name == "tiny-align":
        data = np.arange(48, dtype=dtype).reshape(1, 1, 8, 6)
        return data, np.array([[0, 0, 0, 4, 4]], dtype), (2, 2), 1.0, -1, False
    return wl.make_align(name, dtype)


def samples(data, rois, pooled, scale, ratio, aligned):
    """Sum over ROIs of C x PH x PW x grid_h x grid_w, the grid by the rule
    (float32 arithmetic of compat="torchvision")."""
    ops = ref.AlignOps(np.float32)
    s = ref.align_scale(np.float32, scale)
    rows = np.asarray(rois, np.float32)
    per_row = sum(ref.align_samples(r, s, ops, pooled[0], pooled[1], ratio, aligned)
                  for r in rows)
    return int(per_row) * data.shape[1]


def cpu_ghz():
    """The clock /proc/cpuinfo reports for the first CPU (None if unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def simd_limit(isa, ghz):
    """ns per sample (one channel) that one core's SIMD units need for the
    rule's 4 loads, 4 multiplies and 4 adds per sample and vector of channels:
    lanes per float32 vector, 2 vector loads and 2 multiply/add pipes per cycle
    (Intel since Skylake-SP, AMD Zen 4/5; NEON: 4 lanes, 2 pipes). Multiplies
    and adds share the pipes (no FMA: the rule forbids contraction), so a
    sample vector takes max(4 / 2, 8 / 2) = 4 cycles for `lanes` channels."""
    lanes = {"avx512": 16, "avx2": 8}.get(isa, 4)
    cycles = max(4 / 2, 8 / 2) / lanes
    return None if not ghz else cycles / ghz


def ort_model(onnx, data_shape, rois_shape, pooled, scale, ratio, aligned):
    """A one-node ONNX model, Y = RoiAlign(X, rois, batch_indices), opset 16, avg,
    attributes matching torchvision's rule (half_pixel = aligned)."""
    from onnx import TensorProto, helper

    node = helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode="avg",
        output_height=pooled[0], output_width=pooled[1], spatial_scale=float(scale),
        sampling_ratio=max(int(ratio), 0),
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel")
    graph = helper.make_graph(
        [node], "roi_align_bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(data_shape)),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, [rois_shape[0], 4]),
         helper.make_tensor_value_info("batch_indices", TensorProto.INT64, [rois_shape[0]])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                                       [rois_shape[0], data_shape[1], *pooled])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ort_feeds(data, rois):
    return {"X": data, "rois": np.ascontiguousarray(rois[:, 1:]),
            "batch_indices": rois[:, 0].astype(np.int64)}


def openvino_model(ov, data_shape, n_rois, pooled, scale, ratio, aligned, threads):
    """OpenVINO's CPU plugin running one opset-9 ROIAlign node (avg,
    half_pixel for aligned, asymmetric otherwise), float32 precision hint."""
    from openvino import opset9

    from roipool_bench.peers import _keeps_signal_stack

    x = opset9.parameter(list(data_shape), np.float32, name="X")
    r = opset9.parameter([n_rois, 4], np.float32, name="rois")
    bi = opset9.parameter([n_rois], np.int32, name="batch_indices")
    y = opset9.roi_align(x, r, bi, pooled_h=pooled[0], pooled_w=pooled[1],
                         sampling_ratio=max(int(ratio), 0), spatial_scale=float(scale),
                         mode="avg", aligned_mode="half_pixel" if aligned else "asymmetric")
    model = ov.Model([y], [x, r, bi], "roi_align_bench")
    with _keeps_signal_stack():
        return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": int(threads)})


def openvino_run(compiled, data, rois):
    from roipool_bench.peers import _keeps_signal_stack

    with _keeps_signal_stack():
        return compiled([data, np.ascontiguousarray(rois[:, 1:]),
                         rois[:, 0].astype(np.int32)])[0]


def threads_available():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
