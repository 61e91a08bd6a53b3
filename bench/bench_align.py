#!/usr/bin/env python
"""roipool.roi_align against its peers on the RoIAlign workloads (WORKLOADS.md).

    python bench/bench_align.py                          # every workload, all peers
    python bench/bench_align.py --workload fpn-p2 --repeat 9
    python bench/bench_align.py --peers-only --quick     # no roipool.roi_align yet

For every workload: exactness first (roipool against the plain-loop reference
on a slice of the ROIs and channels, and bit for bit against torchvision and
ONNX Runtime, whose rule is roipool's for float32; OpenVINO's differences are
counted and reported, not failed), then medians, round-robin, at 1 and all
threads, of roipool's default call and its out= call, torchvision's
roi_align, ONNX Runtime's RoiAlign (avg) and OpenVINO's ROIAlign; on fpn-p2
also the backward of roipool and torchvision. Each row gives ns per sample
(samples: C x PH x PW x grid per ROI) and the ratio to roipool's default call
at the same thread count, beside a limit: what one core's SIMD units need for
the rule's 4 loads, 4 multiplies and 4 adds per sample and vector of channels
(roipool_bench/align.py, simd_limit). Any exactness failure exits with status 1.
"""
import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

import roipool  # noqa: E402
from roipool import _reference as ref  # noqa: E402

from roipool_bench import align as A  # noqa: E402
from roipool_bench.peers import load_peers  # noqa: E402
from roipool_bench.report import machine_info  # noqa: E402
from roipool_bench.timing import Contestant, med_ms, round_robin  # noqa: E402

REF_ROIS, REF_CHANNELS = 6, 8  # the slice checked against the plain loops


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="all", help=f"comma list or all: {', '.join(A.WORKLOADS)}")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per measurement (7; quick 3)")
    p.add_argument("--threads", default=None, help="comma list (default: 1 and all cores)")
    p.add_argument("--peers", default="torchvision,ort,openvino",
                   help="comma list of torchvision, ort, openvino, or none")
    p.add_argument("--peers-only", action="store_true",
                   help="time the peers without roipool (only while roi_align does not exist)")
    p.add_argument("--quick", action="store_true", help="3 runs per measurement")
    p.add_argument("--out", default=None, help="JSON results path (default bench/results/align-<time>.json)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--inject-mismatch", action="store_true",
                   help="testing: move roipool's first result by one ulp; the checks must fail")
    a = p.parse_args(argv)
    a.repeat = a.repeat or (3 if a.quick else 7)
    return a


class Mismatch(Exception):
    pass


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and \
        np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def check(name, w, peers, have_roipool, log, inject=False):
    """Exactness of the workload; returns {peer: elements that differ from the rule}."""
    data, rois, pooled, scale, ratio, aligned = w
    found = {}
    # the plain loops on a slice (they are slow)
    sub_d, sub_r = data[:, :REF_CHANNELS], rois[:REF_ROIS]
    want_sub = ref.roi_align(sub_d, sub_r, pooled, scale, ratio, aligned)
    rule = None
    if have_roipool:
        rule = roipool.roi_align(data, rois, pooled, scale, ratio, aligned)
        if inject:
            rule.flat[0] = np.nextafter(rule.flat[0], np.float32(np.inf))
        if not same_bits(rule[:REF_ROIS, :REF_CHANNELS], want_sub):
            raise Mismatch(f"{name}: roipool differs from the reference")
        if not same_bits(roipool.roi_align(sub_d, sub_r, pooled, scale, ratio, aligned), want_sub):
            raise Mismatch(f"{name}: roipool differs from the reference (slice call)")
        grad = np.random.default_rng(1).standard_normal(rule[:2, :REF_CHANNELS].shape, np.float32)
        if not same_bits(roipool.roi_align_backward(grad, rois[:2], sub_d.shape, scale, ratio, aligned),
                         ref.roi_align_backward(grad, rois[:2], sub_d.shape, scale, ratio, aligned)):
            raise Mismatch(f"{name}: roipool's backward differs from the reference")
    if peers["torchvision"] is not None:
        torch, tv = peers["torchvision"]
        got = tv.ops.roi_align(torch.from_numpy(data), torch.from_numpy(rois), pooled, scale,
                               ratio, aligned).numpy()
        if not same_bits(got[:REF_ROIS, :REF_CHANNELS], want_sub):
            raise Mismatch(f"{name}: torchvision differs from the reference")
        rule = got if rule is None else rule
        if not same_bits(got, rule):
            raise Mismatch(f"{name}: roipool differs from torchvision")
        found["torchvision"] = 0
    if peers["ort"] is not None:
        ort, onnx = peers["ort"]
        sess = ort.InferenceSession(A.ort_model(onnx, data.shape, rois.shape, pooled, scale, ratio,
                                                aligned), providers=["CPUExecutionProvider"])
        got = sess.run(None, A.ort_feeds(data, rois))[0]
        if not same_bits(got[:REF_ROIS, :REF_CHANNELS], want_sub):
            raise Mismatch(f"{name}: ONNX Runtime differs from the reference")
        if rule is not None and not same_bits(got, rule):
            raise Mismatch(f"{name}: roipool (compat onnxruntime = torchvision in float32) "
                           "differs from ONNX Runtime")
        rule = got if rule is None else rule
        found["ort"] = 0
    if peers["openvino"] is not None:
        got = A.openvino_run(A.openvino_model(peers["openvino"], data.shape, len(rois), pooled,
                                              scale, ratio, aligned, 1), data, rois)
        mine = got if rule is not None else got[:REF_ROIS, :REF_CHANNELS]
        full = rule if rule is not None else want_sub
        diff = mine != full
        found["openvino"] = int(diff.sum())
        found["openvino_of"] = int(diff.size)
        found["openvino_max_abs"] = float(np.abs(mine.astype(np.float64) - full).max())
        found["openvino_rois_equal"] = int((~diff.reshape(len(diff), -1).any(axis=1)).sum())
    log("  exact: reference slice ok; " + ", ".join(f"{k} {v}" for k, v in found.items()))
    return found


def bench(name, w, peers, threads, args, have_roipool):
    data, rois, pooled, scale, ratio, aligned = w
    tiny = name.startswith("tiny")
    number = 2000 if tiny and not args.quick else 200 if tiny else 1
    rep = args.repeat
    cs = []

    def add(key, fn, setup=None):
        cs.append(Contestant(key, fn, number if key[0] == "fwd" else 1, rep, setup))

    out = np.empty((len(rois), data.shape[1]) + pooled, np.float32)
    grad = np.random.default_rng(2).standard_normal(out.shape, np.float32)
    gbuf = np.empty(data.shape, np.float32)
    for nt in threads:
        if have_roipool:
            add(("fwd", "roipool_default", nt), lambda nt=nt: roipool.roi_align(
                data, rois, pooled, scale, ratio, aligned, num_threads=nt))
            add(("fwd", "roipool_out", nt), lambda nt=nt: roipool.roi_align(
                data, rois, pooled, scale, ratio, aligned, out, num_threads=nt))
            if name == "fpn-p2":
                add(("bwd", "roipool_default", nt), lambda nt=nt: roipool.roi_align_backward(
                    grad, rois, data.shape, scale, ratio, aligned, num_threads=nt))
                add(("bwd", "roipool_out", nt), lambda nt=nt: roipool.roi_align_backward(
                    grad, rois, data.shape, scale, ratio, aligned, gbuf, num_threads=nt))
        if peers["torchvision"] is not None:
            torch, tv = peers["torchvision"]
            x, rt, gt = torch.from_numpy(data), torch.from_numpy(rois), torch.from_numpy(grad)
            setup = (lambda nt=nt: torch.set_num_threads(nt))
            add(("fwd", "torchvision", nt),
                lambda x=x, rt=rt: tv.ops.roi_align(x, rt, pooled, scale, ratio, aligned), setup)
            if name == "fpn-p2":
                N, C, H, W = data.shape
                add(("bwd", "torchvision", nt), lambda gt=gt, rt=rt: torch.ops.torchvision
                    ._roi_align_backward(gt, rt, scale, pooled[0], pooled[1], N, C, H, W, ratio,
                                         aligned), setup)
        if peers["ort"] is not None:
            ort, onnx = peers["ort"]
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = nt, 1
            so.log_severity_level = 3
            sess = ort.InferenceSession(A.ort_model(onnx, data.shape, rois.shape, pooled, scale,
                                                    ratio, aligned), so,
                                        providers=["CPUExecutionProvider"])
            feeds = A.ort_feeds(data, rois)
            add(("fwd", "ort", nt), lambda sess=sess, feeds=feeds: sess.run(None, feeds))
        if peers["openvino"] is not None:
            comp = A.openvino_model(peers["openvino"], data.shape, len(rois), pooled, scale, ratio,
                                    aligned, nt)
            add(("fwd", "openvino", nt), lambda comp=comp: A.openvino_run(comp, data, rois))
    samples, numbers = round_robin(cs)
    return samples, numbers


def main(argv=None):
    args = parse_args(argv)
    log = print
    have_roipool = hasattr(roipool, "roi_align")
    if not have_roipool and not args.peers_only:
        raise SystemExit("roipool.roi_align is missing (this build has no RoIAlign); "
                         "--peers-only times the peers alone")
    if args.peers_only:
        have_roipool = False
    names = list(A.WORKLOADS) if args.workload == "all" else args.workload.split(",")
    threads = [int(t) for t in args.threads.split(",")] if args.threads else \
        sorted({1, A.threads_available()})
    peers, why = load_peers(args.peers if args.peers != "none" else "none")
    for k, v in why.items():
        if k != "opencv" and v != "not requested":
            log(f"peer {k} missing: {v}")
    info = machine_info(peers)
    ghz = A.cpu_ghz()
    limit = A.simd_limit(roipool.get_isa(), ghz)
    log(f"CPU {info['cpu']} ({info['cores']} cores, {ghz} GHz reported), isa {roipool.get_isa()}; "
        f"limit {limit and round(limit, 4)} ns/sample per core")
    res = {"machine": info, "limit_ns_per_sample_1core": limit, "cpu_ghz": ghz,
           "have_roipool": have_roipool, "workloads": {}}
    status = 0
    for name in names:
        w = A.make(name)
        n_samples = A.samples(*w)
        log(f"{name}: data {w[0].shape}, {len(w[1])} ROIs, pooled {w[2]}, scale {w[3]}, "
            f"sampling_ratio {w[4]}, aligned {w[5]}: {n_samples:,} samples")
        try:
            exact = check(name, w, peers, have_roipool, log, args.inject_mismatch)
        except Mismatch as e:
            log(f"  EXACTNESS FAILURE: {e}; no timing done")
            status = 1
            continue
        t0 = time.perf_counter()
        samples, numbers = bench(name, w, peers, threads, args, have_roipool)
        rows = {}
        for (direction, impl, nt), s in samples.items():
            ms = med_ms(s)
            rows[f"{direction}/{impl}/{nt}"] = {"median_ms": ms, "samples_s": s,
                                                "ns_per_sample": ms * 1e6 / n_samples}
        for key, row in rows.items():
            direction, impl, nt = key.split("/")
            base = rows.get(f"{direction}/roipool_default/{nt}")
            row["x_vs_roipool_default"] = row["median_ms"] / base["median_ms"] if base else None
            lim = limit and limit / int(nt)
            row["x_limit"] = row["ns_per_sample"] / lim if lim else None
            log(f"  {direction} {impl:18s} {nt} thr: {row['median_ms']:10.3f} ms  "
                f"{row['ns_per_sample']:8.3f} ns/sample"
                + (f"  {row['x_vs_roipool_default']:6.1f}x roipool" if base else "")
                + (f"  {row['x_limit']:6.1f}x limit" if row["x_limit"] else ""))
        res["workloads"][name] = {"samples": n_samples, "exact": exact, "rows": rows,
                                  "calls_per_sample": {"/".join(map(str, k)): v
                                                       for k, v in numbers.items()},
                                  "seconds": time.perf_counter() - t0}
    if not args.no_write:
        path = Path(args.out) if args.out else HERE / "results" / \
            f"align-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1, default=str))
        log(f"results: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
