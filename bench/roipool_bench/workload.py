"""One workload's contestants: roipool's calls, the peers, the memory floors."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import roipool
from roipool import _workloads as wl

from roipool_bench import peers as pr
from roipool_bench.checks import bfloat16
from roipool_bench.timing import Contestant, med_ms, round_robin

F32 = np.float32


def bench_workload(name, peers, threads, args, arg, grad, log):
    """Time one workload: every contestant (roipool variants, peers, forward
    and backward, each thread count) round-robin. Returns (forward rows,
    backward rows) holding the raw samples in seconds per call."""
    data, rois, pooled, scale = wl.make(name)
    tiny = name.startswith("tiny")
    N, C, H, W = data.shape
    n_visits = wl.visits(data.shape, rois, pooled, scale)
    number = args.tiny_number if tiny else 1
    rep, prep = args.repeat, args.peer_repeat
    out = np.empty((len(rois), C) + pooled, F32)
    am = np.empty(out.shape, np.int32)
    g_buf = np.empty(data.shape, F32)
    cs = []  # keys: (direction, implementation, threads)

    def add(key, fn, repeat, setup=None):
        cs.append(Contestant(key, fn, number if key[0] == "fwd" else 1, repeat, setup))

    for nt in threads:
        add(("fwd", "roipool_out", nt),
            lambda nt=nt: roipool.roi_pooling(data, rois, pooled, scale, out, num_threads=nt), rep)
        # the call users make: roipool allocates, the caller drops the result
        add(("fwd", "roipool_default", nt),
            lambda nt=nt: roipool.roi_pooling(data, rois, pooled, scale, num_threads=nt), rep)
        add(("fwd", "roipool_argmax", nt),
            lambda nt=nt: roipool.roi_pooling(data, rois, pooled, scale, out, argmax=am,
                                              num_threads=nt), rep)
        if not tiny:
            add(("bwd", "roipool_out", nt),
                lambda nt=nt: roipool.roi_pooling_backward(grad, rois, arg, data.shape, g_buf,
                                                           num_threads=nt), rep)
            add(("bwd", "roipool_default", nt),
                lambda nt=nt: roipool.roi_pooling_backward(grad, rois, arg, data.shape,
                                                           num_threads=nt), rep)
    # memory floors (numpy, 1 thread): writing the output once; reading the
    # backward's inputs (grad_out and argmax) once
    if not tiny:
        add(("floor", "write_out", 1), lambda: out.fill(0.0), rep)
        add(("floor", "read_bwd_inputs", 1), lambda: (grad.max(), arg.max()), rep)
    allc = max(threads)
    if not tiny and allc > 1:
        # allc Python threads at once, one single-threaded call each per sample
        pool = ThreadPoolExecutor(allc)
        bufs = [np.empty_like(out) for _ in range(allc)]

        def in_threads(make_call):
            for f in [pool.submit(make_call(i)) for i in range(allc)]:
                f.result()
        add(("fwd", "pythreads_out", allc), lambda: in_threads(
            lambda i: lambda: roipool.roi_pooling(data, rois, pooled, scale, bufs[i],
                                                  num_threads=1)), rep)
        add(("fwd", "pythreads_default", allc), lambda: in_threads(
            lambda i: lambda: roipool.roi_pooling(data, rois, pooled, scale, num_threads=1)),
            rep)
    sessions = []
    if peers["torchvision"] is not None:
        torch, torchvision = peers["torchvision"]
        x, rt = torch.from_numpy(data), torch.from_numpy(rois)
        gt, at = torch.from_numpy(grad), torch.from_numpy(arg)
        xg = torch.from_numpy(data.copy()).requires_grad_()

        def autograd_step():
            xg.grad = None
            torchvision.ops.roi_pool(xg, rt, pooled, scale).backward(gt)
        import roipool.torch as rpt

        for nt in threads:
            setup = (lambda nt=nt: torch.set_num_threads(nt))
            # roipool's torch front end, default call (no autograd: no argmax)
            add(("fwd", "roipool_torch", nt),
                lambda nt=nt: rpt.roi_pool(x, rt, pooled, scale, num_threads=nt), rep)
            # the public API users call (it drops the argmax the op computes)
            add(("fwd", "torchvision", nt), lambda: torchvision.ops.roi_pool(x, rt, pooled, scale),
                prep, setup)
            if not tiny:
                # the kernel autograd's RoIPoolFunction::backward calls, fed the argmax
                # of the forward (equal to roipool's, checked)
                add(("bwd", "torchvision", nt), lambda: torch.ops.torchvision._roi_pool_backward(
                    gt, rt, at, scale, pooled[0], pooled[1], N, C, H, W), prep, setup)
                if args.autograd:
                    add(("bwd", "torchvision_autograd_fwd_bwd", nt), autograd_step, prep, setup)
    if peers["ort"] is not None:
        ort, onnx = peers["ort"]
        mb, opset = pr.ort_model_bytes(onnx, data.shape, rois.shape, pooled, scale)
        feeds = {"X": data, "rois": rois}
        for nt in threads:
            sess = pr.ort_session(ort, mb, nt)
            sessions.append(sess)
            add(("fwd", "ort", nt), lambda sess=sess: sess.run(None, feeds), prep)

    cv2 = peers["opencv"]
    if cv2 is not None:
        net = pr.opencv_net(cv2, data.shape, len(rois), pooled, scale)
        for nt in threads:
            add(("fwd", "opencv", nt), lambda: pr.opencv_run(net, data, rois), prep,
                lambda nt=nt: cv2.setNumThreads(nt))

    ov = peers["openvino"]
    if ov is not None:
        bf16 = bfloat16()
        if bf16 is not None:  # roipool's bfloat16 call, beside OpenVINO's bfloat16 mode
            data16 = data.astype(bf16)
            for nt in threads:
                add(("fwd", "roipool_bf16", nt), lambda nt=nt: roipool.roi_pooling(
                    data16, rois, pooled, scale, num_threads=nt), rep)
        for precision in ("f32",) + (("bf16",) if bf16 is not None else ()):
            key = "openvino" if precision == "f32" else "openvino_bf16"
            for nt in threads:
                compiled, _ = pr.openvino_model(ov, data.shape, rois.shape, pooled, scale,
                                                precision, nt)
                sessions.append(compiled)
                add(("fwd", key, nt), lambda c=compiled: pr.openvino_run(c, data, rois), prep)

    saved_tv = peers["torchvision"][0].get_num_threads() if peers["torchvision"] else None
    saved_cv = cv2.getNumThreads() if cv2 is not None else None
    try:
        res, calls = round_robin(cs)
    finally:
        if saved_tv is not None:
            peers["torchvision"][0].set_num_threads(saved_tv)
        if saved_cv is not None:
            cv2.setNumThreads(saved_cv)
        if not tiny and allc > 1:
            pool.shutdown()
    del sessions

    fwd = {nt: {"workload": name, "threads": nt, "visits": n_visits} for nt in threads}
    bwd = {nt: {"workload": name, "threads": nt, "grad_elements": int(grad.size)}
           for nt in threads} if not tiny else {}
    for (d, impl, nt), smp in res.items():
        if d == "floor":
            for row in (fwd if impl == "write_out" else bwd).values():
                row[f"{impl}_floor_ms"] = med_ms(smp)
        else:
            row = (fwd if d == "fwd" else bwd)[nt]
            row[f"{impl}_s"] = smp
            row[f"{impl}_calls_per_sample"] = calls[(d, impl, nt)]
    if peers["ort"] is not None:
        for nt in threads:
            fwd[nt]["ort_opset"] = opset
    for nt in threads:
        f = fwd[nt]
        log(f"  fwd {nt}T: " + "   ".join(
            f"{k[:-2]} {med_ms(f[k]):.4g} ms" for k in f if k.endswith("_s")))
        if nt in bwd:
            log(f"  bwd {nt}T: " + "   ".join(
                f"{k[:-2]} {med_ms(bwd[nt][k]):.4g} ms" for k in bwd[nt] if k.endswith("_s")))
    if not tiny:
        log(f"  memory floors (numpy, 1 thread): write the output {fwd[threads[0]]['write_out_floor_ms']:.4g}"
            f" ms, read grad_out + argmax {bwd[threads[0]]['read_bwd_inputs_floor_ms']:.4g} ms")
    return [fwd[nt] for nt in threads], [bwd[nt] for nt in threads if nt in bwd]


