"""Medians, ratios and the targets (reported as PASS / MISS, never asserted)."""
import numpy as np

from roipool_bench.timing import med_ms, ratio

# The targets of issue 4. Reported as PASS / MISS, never asserted.
TARGET_FWD_VS_PEER = 30.0      # vgg16-frcnn, float32, all cores, vs torchvision and vs ORT
TARGET_X_LIMIT = 2.0           # forward ns/visit per thread <= 2x the np.max limit
TARGET_SCALING = 1.8           # 1 -> 2 threads, every workload except tiny
TARGET_TINY_US = 5.0           # tiny, default call (validation, allocation), per call
TARGET_BWD_VS_TV = 10.0        # backward vs torchvision's CPU backward

def summarize(fwd_rows, bwd_rows, limit):
    """Medians, ns/visit, x limit, ratios (in place); returns scaling per workload."""
    for r in fwd_rows:
        for k in ("roipool_out", "roipool_alloc", "roipool_argmax", "torchvision", "ort"):
            if f"{k}_s" in r:
                r[f"{k}_ms"] = med_ms(r[f"{k}_s"])
                r[f"{k}_min_ms"] = float(np.min(r[f"{k}_s"])) * 1e3
        r["ns_per_visit"] = r["roipool_out_ms"] * 1e6 / r["visits"]
        r["x_limit_per_thread"] = r["ns_per_visit"] * r["threads"] / limit
        for peer in ("torchvision", "ort"):
            if f"{peer}_ms" in r:
                r[f"speedup_{peer}"] = ratio(r[f"{peer}_ms"], r["roipool_out_ms"])
                r[f"speedup_{peer}_alloc"] = ratio(r[f"{peer}_ms"], r["roipool_alloc_ms"])
    fwd_by = {(r["workload"], r["threads"]): r for r in fwd_rows}
    for b in bwd_rows:
        for k in ("roipool_out", "roipool_alloc", "torchvision", "torchvision_autograd_fwd_bwd"):
            if f"{k}_s" in b:
                b[f"{k}_ms"] = med_ms(b[f"{k}_s"])
        if "torchvision_autograd_fwd_bwd_ms" in b:
            f = fwd_by[(b["workload"], b["threads"])]
            b["torchvision_autograd_bwd_ms"] = b["torchvision_autograd_fwd_bwd_ms"] - f["torchvision_ms"]
        b["ns_per_grad_element"] = b["roipool_out_ms"] * 1e6 / b["grad_elements"]
        if "torchvision_ms" in b:
            b["speedup_torchvision"] = ratio(b["torchvision_ms"], b["roipool_out_ms"])
            b["speedup_torchvision_alloc"] = ratio(b["torchvision_ms"], b["roipool_alloc_ms"])
    scaling = {}
    by = {}
    for r in fwd_rows:
        by.setdefault(r["workload"], {})[r["threads"]] = r
    for name, d in by.items():
        lo, hi = min(d), max(d)
        if hi > lo:
            scaling[name] = {"from": lo, "to": hi,
                             "ratio": d[lo]["roipool_out_ms"] / d[hi]["roipool_out_ms"]}
    return scaling


def worst_of(name, rows, key, spec, target, higher_is_better, status=None):
    """(name, text, PASS/MISS/N/A) for a bound every row must meet, judged on
    the worst row; `status` replaces PASS/MISS for lines that are not targets."""
    if not rows:
        return name, "not measured", "N/A"
    pick = min if higher_is_better else max
    worst = pick(r[key] for r in rows)
    txt = ", ".join(f"{r['workload']} {spec.format(r[key])}x" for r in rows)
    ok = worst >= target if higher_is_better else worst <= target
    return name, f"worst {spec.format(worst)}x ({txt})", status or ("PASS" if ok else "MISS")


def one_row(name, row, key, text, target, higher_is_better):
    """(name, text, PASS/MISS/N/A) for a target judged on one row; `text` is
    formatted with x (the value) and alloc (the allocating call's value)."""
    if row is None or key not in row:
        return name, "not measured", "N/A"
    x = row[key]
    ok = x >= target if higher_is_better else x <= target
    return name, text.format(x=x, alloc=row.get(f"{key}_alloc")), "PASS" if ok else "MISS"


def evaluate_targets(fwd_rows, bwd_rows, scaling, tiny_default):
    """[(name, value text, PASS/MISS/N/A)]"""
    out = []
    allc = max((r["threads"] for r in fwd_rows), default=1)

    def row(name, nt):
        for r in fwd_rows:
            if r["workload"] == name and r["threads"] == nt:
                return r
        return None

    v = row("vgg16-frcnn", allc)
    for peer, label in (("torchvision", "torchvision"), ("ort", "ONNX Runtime")):
        out.append(one_row(f"vgg16-frcnn fwd {allc}T >= {TARGET_FWD_VS_PEER:g}x {label}", v,
                           f"speedup_{peer}", "{x:.1f}x with out= ({alloc:.1f}x allocating)",
                           TARGET_FWD_VS_PEER, higher_is_better=True))
    # The issue sets the limit and backward targets on vgg16-frcnn at all
    # cores; the same bound over every workload and thread count is shown
    # beside them as "info" (stricter, not a target).
    out.append(one_row(f"vgg16-frcnn fwd {allc}T ns/visit per thread <= {TARGET_X_LIMIT:g}x "
                       "limit", v, "x_limit_per_thread", "{x:.2f}x", TARGET_X_LIMIT,
                       higher_is_better=False))
    for nt in sorted({1, allc}):
        rows = [r for r in fwd_rows if r["threads"] == nt and not r["workload"].startswith("tiny")]
        out.append(worst_of(f"(every non-tiny workload) fwd ns/visit per thread <= "
                            f"{TARGET_X_LIMIT:g}x limit at {nt}T", rows, "x_limit_per_thread",
                            "{:.2f}", TARGET_X_LIMIT, higher_is_better=False, status="info"))
    sc = {k: v for k, v in scaling.items() if not k.startswith("tiny")}
    name = f"1->{allc} threads >= {TARGET_SCALING:g}x (non-tiny)"
    if sc:
        worst = min(sc, key=lambda k: sc[k]["ratio"])
        txt = ", ".join(f"{k} {v['ratio']:.2f}" for k, v in sc.items())
        out.append((name, f"worst {worst} {sc[worst]['ratio']:.2f}x ({txt})",
                    "PASS" if sc[worst]["ratio"] >= TARGET_SCALING else "MISS"))
    else:
        out.append((name, "not measured (one thread or no non-tiny workload)", "N/A"))
    name = f"tiny default call <= {TARGET_TINY_US:g} us"
    if tiny_default:
        worst = max(tiny_default.values())
        txt = ", ".join(f"{k} {v:.2f} us" for k, v in tiny_default.items())
        out.append((name, txt, "PASS" if worst <= TARGET_TINY_US else "MISS"))
    else:
        out.append((name, "not measured", "N/A"))
    b = next((b for b in bwd_rows if b["workload"] == "vgg16-frcnn" and b["threads"] == allc),
             None)
    out.append(one_row(f"vgg16-frcnn backward {allc}T >= {TARGET_BWD_VS_TV:g}x torchvision", b,
                       "speedup_torchvision", "{x:.1f}x", TARGET_BWD_VS_TV,
                       higher_is_better=True))
    for nt in sorted({1, allc}):
        rows = [b for b in bwd_rows if b["threads"] == nt and "speedup_torchvision" in b]
        out.append(worst_of(f"(every non-tiny workload) backward {nt}T >= "
                            f"{TARGET_BWD_VS_TV:g}x torchvision", rows, "speedup_torchvision",
                            "{:.1f}", TARGET_BWD_VS_TV, higher_is_better=True, status="info"))
    return out


