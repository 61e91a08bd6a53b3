"""Medians, ratios and the targets (reported as PASS / MISS, never asserted)."""
import numpy as np

from roipool_bench.timing import med_ms, ratio

# The targets of issues 4 and 11. Reported as PASS / MISS, never asserted.
TARGET_FWD_VS_PEER = {"torchvision": 40.0, "ort": 30.0, "opencv": 20.0}  # vgg16-frcnn,
#                                   default call, float32, all cores
TARGET_DEFAULT_OVER_OUT = 1.2  # default call / out= call, every workload, 1 and all threads
TARGET_X_LIMIT = 1.25          # vgg16-frcnn out= ns/visit per thread / the np.max limit
# Issue 17: out= per thread within 1.3x of the limit on these workloads, 1T and 2T
TARGET_X_LIMIT_17 = 1.3
X_LIMIT_17_WORKLOADS = ("vgg16-frcnn", "vgg16-frcnn-300")
TARGET_SCALING = 1.8           # 1 -> 2 threads, default call, every workload except tiny
TARGET_TINY_US = 5.0           # tiny, default call (validation, allocation), per call
TARGET_BWD_VS_TV = 10.0        # backward (default call) vs torchvision's CPU backward
# Issue 17, the fixed cost of a call, on the seed-size (tiny) workloads:
TARGET_TINY_VS_OPENCV = 1.0    # OpenCV dnn median / roipool default-call median, at least
TARGET_TINY_TORCH_US = 15.0    # roipool.torch.roi_pool per call, at most
TARGET_TINY_TORCH_OVER_TV = 1.5  # roipool.torch.roi_pool / torchvision.ops.roi_pool, at most
PEERS = {"torchvision": "torchvision", "ort": "ONNX Runtime", "opencv": "OpenCV dnn",
         "openvino": "OpenVINO"}  # float32, each beside roipool's default call
# Forward contestants with medians; ratios of a row come from the same run.
FWD_KEYS = ("roipool_default", "roipool_out", "roipool_argmax", "roipool_torch",
            "pythreads_default", "pythreads_out", "roipool_bf16", "openvino_bf16", *PEERS)
BWD_KEYS = ("roipool_default", "roipool_out", "torchvision", "torchvision_autograd_fwd_bwd")


def _medians(row, keys):
    for k in keys:
        if f"{k}_s" in row:
            row[f"{k}_ms"] = med_ms(row[f"{k}_s"])
            row[f"{k}_min_ms"] = float(np.min(row[f"{k}_s"])) * 1e3


def summarize(fwd_rows, bwd_rows, limit):
    """Medians, ns/visit, x limit, ratios (in place); returns scaling per
    workload (default call; the out= call's as "ratio_out")."""
    for r in fwd_rows:
        _medians(r, FWD_KEYS)
        r["ns_per_visit"] = r["roipool_out_ms"] * 1e6 / r["visits"]
        r["x_limit_per_thread"] = r["ns_per_visit"] * r["threads"] / limit
        # The limit is the median of 1,050 calls of ~10 us, which a neighbour's
        # burst on a shared host rarely hits; an out= call of 2-20 ms often is.
        # The fastest out= sample against it shows the kernel without that.
        r["x_limit_best_per_thread"] = (r["roipool_out_min_ms"] * 1e6 / r["visits"]
                                        * r["threads"] / limit)
        r["default_over_out"] = ratio(r["roipool_default_ms"], r["roipool_out_ms"])
        r["torch_over_out"] = ratio(r.get("roipool_torch_ms"), r["roipool_out_ms"])
        r["torch_over_tv"] = ratio(r.get("roipool_torch_ms"), r.get("torchvision_ms"))
        r["roipool_torch_us"] = None if r.get("roipool_torch_ms") is None else \
            r["roipool_torch_ms"] * 1e3
        r["pythreads_default_over_out"] = ratio(r.get("pythreads_default_ms"),
                                                r.get("pythreads_out_ms"))
        for peer in PEERS:
            if f"{peer}_ms" in r:
                r[f"speedup_{peer}"] = ratio(r[f"{peer}_ms"], r["roipool_default_ms"])
                r[f"speedup_{peer}_out"] = ratio(r[f"{peer}_ms"], r["roipool_out_ms"])
        # bfloat16: OpenVINO's bfloat16 mode beside roipool's bfloat16 default call
        r["speedup_openvino_bf16"] = ratio(r.get("openvino_bf16_ms"), r.get("roipool_bf16_ms"))
    fwd_by = {(r["workload"], r["threads"]): r for r in fwd_rows}
    for b in bwd_rows:
        _medians(b, BWD_KEYS)
        if "torchvision_autograd_fwd_bwd_ms" in b:
            f = fwd_by[(b["workload"], b["threads"])]
            b["torchvision_autograd_bwd_ms"] = b["torchvision_autograd_fwd_bwd_ms"] - f["torchvision_ms"]
        b["ns_per_grad_element"] = b["roipool_out_ms"] * 1e6 / b["grad_elements"]
        if "torchvision_ms" in b:
            b["speedup_torchvision"] = ratio(b["torchvision_ms"], b["roipool_default_ms"])
            b["speedup_torchvision_out"] = ratio(b["torchvision_ms"], b["roipool_out_ms"])
    scaling = {}
    by = {}
    for r in fwd_rows:
        by.setdefault(r["workload"], {})[r["threads"]] = r
    for name, d in by.items():
        lo, hi = min(d), max(d)
        if hi > lo:
            scaling[name] = {"from": lo, "to": hi,
                             "ratio": d[lo]["roipool_default_ms"] / d[hi]["roipool_default_ms"],
                             "ratio_out": d[lo]["roipool_out_ms"] / d[hi]["roipool_out_ms"]}
    return scaling


def worst_of(name, rows, key, spec, target, higher_is_better, status=None, unit="x"):
    """(name, text, PASS/MISS/N/A) for a bound every row must meet, judged on
    the worst row; `status` replaces PASS/MISS for lines that are not targets."""
    rows = [r for r in rows if r.get(key) is not None]
    if not rows:
        return name, "not measured", "N/A"
    pick = min if higher_is_better else max
    worst = pick(r[key] for r in rows)
    txt = ", ".join(f"{r['workload']} {r['threads']}T {spec.format(r[key])}{unit}" for r in rows)
    ok = worst >= target if higher_is_better else worst <= target
    return name, f"worst {spec.format(worst)}{unit} ({txt})", status or ("PASS" if ok else "MISS")


def one_row(name, row, key, text, target, higher_is_better):
    """(name, text, PASS/MISS/N/A) for a target judged on one row; `text` is
    formatted with x (the value) and out (the out= call's value)."""
    if row is None or row.get(key) is None:
        return name, "not measured", "N/A"
    x = row[key]
    ok = x >= target if higher_is_better else x <= target
    return name, text.format(x=x, out=row.get(f"{key}_out")), "PASS" if ok else "MISS"


def evaluate_targets(fwd_rows, bwd_rows, scaling, tiny_default):
    """[(name, value text, PASS/MISS/N/A/info)]"""
    out = []
    allc = max((r["threads"] for r in fwd_rows), default=1)
    counts = sorted({1, allc})

    def rows_at(nt, tiny=True):
        return [r for r in fwd_rows if r["threads"] == nt
                and (tiny or not r["workload"].startswith("tiny"))]

    v = next((r for r in rows_at(allc) if r["workload"] == "vgg16-frcnn"), None)
    for nt in counts:
        out.append(worst_of(f"default call / out= call <= {TARGET_DEFAULT_OVER_OUT:g}x, every "
                            f"workload, {nt}T (caller drops each result)", rows_at(nt),
                            "default_over_out", "{:.2f}", TARGET_DEFAULT_OVER_OUT,
                            higher_is_better=False))
    out.append(worst_of(f"default / out= <= {TARGET_DEFAULT_OVER_OUT:g}x with {allc} Python "
                        "threads calling at once (1 OpenMP thread each), every non-tiny workload",
                        rows_at(allc, tiny=False), "pythreads_default_over_out", "{:.2f}",
                        TARGET_DEFAULT_OVER_OUT, higher_is_better=False))
    for peer, label in PEERS.items():
        if peer not in TARGET_FWD_VS_PEER:  # a peer without a target (OpenVINO)
            continue
        t = TARGET_FWD_VS_PEER[peer]
        out.append(one_row(f"vgg16-frcnn default call {allc}T >= {t:g}x {label}", v,
                           f"speedup_{peer}", "{x:.1f}x ({out:.1f}x with out=)", t,
                           higher_is_better=True))
    sc = {k: v for k, v in scaling.items() if not k.startswith("tiny")}
    name = f"1->{allc} threads >= {TARGET_SCALING:g}x, default call (non-tiny)"
    if sc:
        worst = min(sc, key=lambda k: sc[k]["ratio"])
        txt = ", ".join(f"{k} {v['ratio']:.2f} (out= {v['ratio_out']:.2f})"
                        for k, v in sc.items())
        out.append((name, f"worst {worst} {sc[worst]['ratio']:.2f}x ({txt})",
                    "PASS" if sc[worst]["ratio"] >= TARGET_SCALING else "MISS"))
    else:
        out.append((name, "not measured (one thread or no non-tiny workload)", "N/A"))
    # The issue sets the limit target on vgg16-frcnn at all cores; the same
    # bound over every workload and thread count is shown beside it as "info".
    out.append(one_row(f"vgg16-frcnn out= {allc}T ns/visit per thread <= {TARGET_X_LIMIT:g}x "
                       "limit", v, "x_limit_per_thread", "{x:.2f}x", TARGET_X_LIMIT,
                       higher_is_better=False))
    for nt in counts:
        out.append(worst_of(f"(every non-tiny workload) out= ns/visit per thread <= "
                            f"{TARGET_X_LIMIT:g}x limit at {nt}T", rows_at(nt, tiny=False),
                            "x_limit_per_thread", "{:.2f}", TARGET_X_LIMIT,
                            higher_is_better=False, status="info"))
    x17 = [r for r in fwd_rows if r["workload"] in X_LIMIT_17_WORKLOADS]
    out.append(worst_of(f"{' and '.join(X_LIMIT_17_WORKLOADS)} out= ns/visit per thread <= "
                        f"{TARGET_X_LIMIT_17:g}x limit, every thread count (medians)", x17,
                        "x_limit_per_thread", "{:.2f}", TARGET_X_LIMIT_17,
                        higher_is_better=False))
    out.append(worst_of("the same, fastest out= sample of each row", x17,
                        "x_limit_best_per_thread", "{:.2f}", TARGET_X_LIMIT_17,
                        higher_is_better=False, status="info"))
    name = f"tiny default call <= {TARGET_TINY_US:g} us"
    if tiny_default:
        worst = max(tiny_default.values())
        txt = ", ".join(f"{k} {v:.2f} us" for k, v in tiny_default.items())
        out.append((name, txt, "PASS" if worst <= TARGET_TINY_US else "MISS"))
    else:
        out.append((name, "not measured", "N/A"))
    tiny = [r for r in fwd_rows if r["workload"].startswith("tiny")]
    out.append(worst_of(f"tiny default call >= {TARGET_TINY_VS_OPENCV:g}x OpenCV dnn (OpenCV "
                        "median / roipool median), every thread count", tiny, "speedup_opencv",
                        "{:.2f}", TARGET_TINY_VS_OPENCV, higher_is_better=True))
    out.append(worst_of(f"tiny roipool.torch.roi_pool <= {TARGET_TINY_TORCH_US:g} us, every "
                        "thread count", tiny, "roipool_torch_us", "{:.2f}", TARGET_TINY_TORCH_US,
                        higher_is_better=False, unit=" us"))
    out.append(worst_of(f"tiny roipool.torch.roi_pool / torchvision.ops.roi_pool <= "
                        f"{TARGET_TINY_TORCH_OVER_TV:g}x, every thread count", tiny,
                        "torch_over_tv", "{:.2f}", TARGET_TINY_TORCH_OVER_TV,
                        higher_is_better=False))
    for nt in counts:
        out.append(worst_of(f"roipool.torch.roi_pool default call / roipool out= <= "
                            f"{TARGET_DEFAULT_OVER_OUT:g}x, every non-tiny workload, {nt}T",
                            rows_at(nt, tiny=False), "torch_over_out", "{:.2f}",
                            TARGET_DEFAULT_OVER_OUT, higher_is_better=False))
    b = next((b for b in bwd_rows if b["workload"] == "vgg16-frcnn" and b["threads"] == allc),
             None)
    out.append(one_row(f"vgg16-frcnn backward default call {allc}T >= {TARGET_BWD_VS_TV:g}x "
                       "torchvision", b, "speedup_torchvision", "{x:.1f}x ({out:.1f}x with out=)",
                       TARGET_BWD_VS_TV, higher_is_better=True))
    for nt in counts:
        rows = [b for b in bwd_rows if b["threads"] == nt]
        out.append(worst_of(f"(every non-tiny workload) backward {nt}T >= "
                            f"{TARGET_BWD_VS_TV:g}x torchvision", rows, "speedup_torchvision",
                            "{:.1f}", TARGET_BWD_VS_TV, higher_is_better=True, status="info"))
    return out
