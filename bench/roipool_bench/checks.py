"""Exactness checks run before any timing: bit-for-bit comparison, the
one-ulp perturbation --inject-mismatch feeds them, and the checks of one
workload against the plain-loop rule and every installed peer."""
import numpy as np

import roipool
from roipool import _reference
from roipool import _workloads as wl
from roipool.__main__ import SEED_EXPECTED

from roipool_bench import peers as pr

F32 = np.float32


def compare(label, got, want):
    """Exact, bit-for-bit comparison of two arrays (floats by their bit
    patterns, so -0.0 != 0.0 and NaN payloads count). Returns a dict with
    "check", "ok", "mismatches" and a human-readable "detail"."""
    got, want = np.asarray(got), np.asarray(want)
    res = {"check": label, "ok": False, "mismatches": None, "detail": ""}
    if got.shape != want.shape:
        res["detail"] = f"shape {got.shape} != {want.shape}"
        return res
    if got.dtype != want.dtype:
        res["detail"] = f"dtype {got.dtype} != {want.dtype}"
        return res
    if got.dtype.kind == "f":
        bits = np.dtype(f"u{got.dtype.itemsize}")
        g, w = np.ascontiguousarray(got).view(bits), np.ascontiguousarray(want).view(bits)
    else:
        g, w = got, want
    bad = g != w
    n = int(np.count_nonzero(bad))
    res["mismatches"] = n
    res["ok"] = n == 0
    if n:
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        res["detail"] = (f"{n} of {got.size} elements differ; first at {idx}: "
                         f"{got[idx]!r} != {want[idx]!r}")
    else:
        res["detail"] = f"exact ({got.size} elements)"
    return res


def perturb(a):
    """Copy of `a` with its last element moved by one ulp (or by one for
    integers): what --inject-mismatch feeds to the checks."""
    a = np.array(a, copy=True)
    if a.size:
        v = a.flat[-1]
        if a.dtype.kind == "f":
            a.flat[-1] = np.nextafter(v, a.dtype.type(0) if np.isinf(v) else a.dtype.type(np.inf))
        else:
            a.flat[-1] = v + 1
    return a


def reference_slice(data, rois, pooled, scale, n_rois=3, n_channels=2):
    """The plain-loop rule (docs/semantics.md, roipool._reference) on the
    first ROIs and channels of a workload: (data slice, rois slice, out, argmax)."""
    d = np.ascontiguousarray(data[:, :n_channels])
    r = rois[:n_rois]
    out, arg = _reference.forward(d, r, pooled, scale)
    return d, r, out, arg


def check_workload(name, peers, inject):
    """Exactness checks of one workload. Returns (list of check dicts,
    roipool's argmax, grad seed) -- the argmax and grad are reused for timing."""
    data, rois, pooled, scale = wl.make(name)
    tiny = name.startswith("tiny")
    checks = []
    maybe = perturb if inject else (lambda a: a)

    out, arg = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True)
    out_tv, arg_tv = roipool.roi_pooling(data, rois, pooled, scale, return_argmax=True,
                                         compat="torchvision")
    # always available: the plain-loop rule of docs/semantics.md (roipool._reference) (a slice of big workloads)
    d, r, ref_out, ref_arg = reference_slice(data, rois, pooled, scale)
    s_out, s_arg = roipool.roi_pooling(d, r, pooled, scale, return_argmax=True)
    checks.append(compare(f"{name}: out == plain-loop rule ({len(r)} ROIs x {d.shape[1]} ch)",
                          maybe(s_out), ref_out))
    checks.append(compare(f"{name}: argmax == plain-loop rule", s_arg, ref_arg))
    if tiny:
        want = np.array(SEED_EXPECTED[scale], F32)[None, None]
        checks.append(compare(f"{name}: out == docs/semantics.md worked example", maybe(out), want))

    grad = np.random.default_rng(1).standard_normal(out.shape, dtype=F32)
    if peers["torchvision"] is not None:
        torch, _ = peers["torchvision"]
        # scale 0.7: torchvision scales in float64, so compare its compat mode
        pow2 = float(np.log2(scale)).is_integer()
        mine_out, mine_arg, how = (out, arg, "") if pow2 else (out_tv, arg_tv, ' compat="torchvision"')
        x = torch.from_numpy(data.copy()).requires_grad_()
        rt = torch.from_numpy(rois)
        # the registered op returns (output, argmax); torchvision.ops.roi_pool drops argmax
        y, a = torch.ops.torchvision.roi_pool(x, rt, scale, pooled[0], pooled[1])
        checks.append(compare(f"{name}: roipool{how} out == torchvision", maybe(mine_out),
                              y.detach().numpy()))
        checks.append(compare(f"{name}: roipool{how} argmax == torchvision", mine_arg,
                              a.numpy().astype(np.int32, copy=False)))
        y.backward(torch.from_numpy(grad))  # autograd: the path users take
        g_mine = roipool.roi_pooling_backward(grad, rois, mine_arg, data.shape)
        checks.append(compare(f"{name}: roipool backward == torchvision autograd x.grad",
                              maybe(g_mine), x.grad.numpy()))
    if peers["ort"] is not None:
        ort, onnx = peers["ort"]
        mb, _ = pr.ort_model_bytes(onnx, data.shape, rois.shape, pooled, scale)
        sess = pr.ort_session(ort, mb, 1)
        y = sess.run(None, {"X": data, "rois": rois})[0]
        # ORT multiplies in float32 like MXNet: roipool's default rule at any scale
        checks.append(compare(f"{name}: roipool out == ONNX Runtime MaxRoiPool", maybe(out), y))
        del sess
    if peers["opencv"] is not None:
        net = pr.opencv_net(peers["opencv"], data.shape, len(rois), pooled, scale)
        y = pr.opencv_run(net, data, rois)
        # OpenCV's Caffe layer multiplies in float32 too; it returns no argmax
        checks.append(compare(f"{name}: roipool out == OpenCV dnn ROIPooling", maybe(out), y))
    if peers["openvino"] is not None:
        checks += check_openvino(peers["openvino"], name, data, rois, pooled, scale, out, maybe)
    return checks, arg, grad


def bfloat16():
    """ml_dtypes.bfloat16, or None without ml_dtypes (then no bfloat16 rows)."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def check_openvino(ov, name, data, rois, pooled, scale, out, maybe):
    """OpenVINO's ROIPooling against roipool where the two rules agree: every
    bin but those whose bounds OpenVINO takes in integer arithmetic
    (peers.openvino_bins_differ; docs/semantics.md, "Where frameworks
    differ"), which are excluded and counted. float32 mode against roipool's
    default call; bfloat16 mode (the inputs rounded to bfloat16, the float32
    rule on them, the result widened) against roipool's float32 call on the
    same rounded inputs."""
    checks = []
    cases = [("f32", data, rois, out)]
    bf16 = bfloat16()
    if bf16 is not None:
        d16 = data.astype(bf16).astype(F32)
        r16 = rois.astype(bf16).astype(F32)
        cases.append(("bf16", data, rois, roipool.roi_pooling(d16, r16, pooled, scale)))
    for precision, d, r, want in cases:
        compiled, runs_in = pr.openvino_model(ov, d.shape, r.shape, pooled, scale, precision, 1)
        y = pr.openvino_run(compiled, d, r)
        r_used = r if precision == "f32" or runs_in == "f32" else r.astype(bf16).astype(F32)
        if precision == "bf16" and runs_in == "f32":
            want = out  # a CPU without bfloat16: OpenVINO falls back to float32
        differ = pr.openvino_bins_differ(d.shape, r_used, pooled, scale)
        keep = np.broadcast_to(~differ[:, None], want.shape)
        res = compare(f"{name}: roipool out == OpenVINO ROIPooling ({precision} mode, runs in "
                      f"{runs_in}), outside the bins OpenVINO bounds in integers",
                      maybe(want)[keep], y[keep])
        inside = int(np.count_nonzero(bits_differ(want[~keep], y[~keep])))
        res["detail"] += (f"; excluded: {int(differ.sum())} bins ({int((~keep).sum())} "
                          f"elements), {inside} of those elements differ")
        checks.append(res)
    return checks


def bits_differ(a, b):
    """Elementwise: the float32 bit patterns of a and b differ."""
    return np.ascontiguousarray(a).view(np.uint32) != np.ascontiguousarray(b).view(np.uint32)

