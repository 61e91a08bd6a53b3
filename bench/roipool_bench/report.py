"""The machine's description and the written results: markdown, chart, history."""
import datetime
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

import roipool
from roipool import _roi_pool

from roipool_bench.targets import PEERS, TARGET_BWD_VS_TV, TARGET_FWD_VS_PEER

PEER_COLUMNS = {"torchvision": "tv", "ort": "ORT", "opencv": "OpenCV", "openvino": "OpenVINO"}

ROOT = Path(__file__).resolve().parent.parent.parent


# the CPU flags that decide roipool's SIMD path and its speed (docs tables name them)
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
              "avx512_fp16", "amx_tile", "asimd", "asimdhp", "sve")


def cpu_info():
    """The first CPU's model name, vendor family/model/stepping and SIMD flags from
    /proc/cpuinfo: a VM may show only "AMD EPYC" as the name, so the numbers
    that identify the generation are recorded beside it."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    return {
        "cpu": fields.get("model name") or platform.processor() or "unknown",
        "cpu_id": {k: fields[k] for k in ("vendor_id", "cpu family", "model", "stepping",
                                           "CPU implementer", "CPU part") if k in fields},
        "cpu_flags": [f for f in SIMD_FLAGS if f in flags],
    }


def machine_info(peers):
    cpu_fields = cpu_info()
    cpu = cpu_fields.pop("cpu")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = _roi_pool.build_info()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "roipool": roipool.__version__}
    if peers["torchvision"] is not None:
        versions["torch"] = peers["torchvision"][0].__version__
        versions["torchvision"] = peers["torchvision"][1].__version__
    if peers["ort"] is not None:
        versions["onnxruntime"] = peers["ort"][0].__version__
        versions["onnx"] = peers["ort"][1].__version__
    if peers["opencv"] is not None:
        versions["opencv"] = peers["opencv"].__version__
    if peers["openvino"] is not None:
        versions["openvino"] = peers["openvino"].__version__.split("-")[0]
    git = {}
    try:
        root = ROOT
        git["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True, timeout=10).stdout.strip()
        st = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                            capture_output=True, text=True, timeout=10).stdout
        git["dirty"] = bool(st.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, **cpu_fields, "cores": cores, "platform": platform.platform(),
        "compiler": info["compiler"], "build_flags": info["flags"],
        "openmp": bool(roipool.openmp_enabled()), "openmp_version": info["openmp_version"],
        "omp_max_threads": _roi_pool.omp_max_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "isa": roipool.get_isa(), "isas_supported": roipool.supported_isas(),
        "versions": versions, "git": git,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def markdown(res):
    m = res["machine"]
    v = m["versions"]
    peers_v = ", ".join(f"{k} {v[k]}" for k in ("torch", "torchvision", "onnxruntime", "onnx",
                                                   "opencv", "openvino")
                        if k in v) or "no peers installed"
    lim = res["limit"]
    L = [
        f"# roipool benchmark ({'quick, ' if res['quick'] else ''}{m['date']})",
        "",
        f"- machine: {m['cpu']}"
        + "".join(f", {k} {v}" for k, v in m.get("cpu_id", {}).items())
        + (f", flags {' '.join(m['cpu_flags'])}" if m.get("cpu_flags") else "")
        + f", {m['cores']} cores available, {m['platform']}",
        f"- roipool {v['roipool']} (git {m['git'].get('commit', '?')}"
        f"{', dirty' if m['git'].get('dirty') else ''}), compiler {m['compiler']}, "
        f"flags `{m['build_flags']}`, OpenMP {'on' if m['openmp'] else 'off'}, "
        f"SIMD path {m['isa']}",
        f"- python {v['python']}, numpy {v['numpy']}, {peers_v}",
        f"- machine limit: np.max over 1 MiB float32 = {lim['ns_per_element']:.4f} ns/element "
        f"per core (start {lim['start']:.4f}, end {lim['end']:.4f}; the lower is used)",
        f"- load average at start / end: {fmt_load(m.get('loadavg_start'))} / "
        f"{fmt_load(m.get('loadavg_end'))}; other processes used "
        f"{fmt(m.get('other_load_cores'), '.2f', '?')} cores on average during the timing "
        f"(shared, noisy machine; column 'other load' per workload)",
        f"- medians of {res['repeat']} runs (roipool) and {res['peer_repeat']} runs (peers) "
        f"after one warm-up; tiny: {res['tiny_number']} calls per run, per-call time shown; "
        f"float32; ratios are peer median / roipool median from this same run",
        "",
        "## Forward: the default call",
        "",
        "`roipool.roi_pooling(data, rois, pooled, scale)`: roipool allocates the output, the "
        "caller drops it before the next call (a service loop). The out= call (a preallocated "
        "output) beside it; every ratio is peer median / roipool default-call median.",
        "",
        "| workload | threads | **default ms** | out= ms | default / out= | "
        + "".join(f"{PEER_COLUMNS[p]} ms | x {PEER_COLUMNS[p]} | " for p in PEERS)
        + "1->N scaling | other load |",
        "| --- |" + " ---: |" * (6 + 2 * len(PEERS)),
    ]
    for r in res["forward"]:
        sct = scaling_cell(res, r, "ratio")
        L.append(
            f"| {r['workload']} | {r['threads']} | **{fmt_ms(r['roipool_default_ms'])}** | "
            f"{fmt_ms(r['roipool_out_ms'])} | {fmt(r['default_over_out'], '.2f')} | "
            + "".join(f"{fmt_ms(r.get(f'{p}_ms'))} | {fmt(r.get(f'speedup_{p}'), '.1f')} | "
                      for p in PEERS)
            + f"{sct} | {fmt(r.get('other_load_cores'), '.2f')} |")
    if any(r.get("openvino_bf16_ms") is not None for r in res["forward"]):
        L += ["", "## Forward: bfloat16 beside OpenVINO's bfloat16 mode", "",
              "roipool's default call on bfloat16 data (`data.astype(ml_dtypes.bfloat16)`) and "
              "OpenVINO's model compiled with `INFERENCE_PRECISION_HINT` bf16 (float32 in and "
              "out, rounded to bfloat16 inside); ratio OpenVINO / roipool.",
              "",
              "| workload | threads | roipool bfloat16 ms | OpenVINO bf16 ms | x OpenVINO bf16 |",
              "| --- | ---: | ---: | ---: | ---: |"]
        L += [f"| {r['workload']} | {r['threads']} | {fmt_ms(r.get('roipool_bf16_ms'))} | "
              f"{fmt_ms(r.get('openvino_bf16_ms'))} | "
              f"{fmt(r.get('speedup_openvino_bf16'), '.1f')} |" for r in res["forward"]]
    L += ["", "## Forward: more roipool calls", "",
          "out= call per element against the machine limit; with argmax; the torch front end's "
          "default call (`roipool.torch.roi_pool`, no autograd); and N Python threads calling "
          "at once (one OpenMP thread each; ms per round of N calls).",
          "",
          "| workload | threads | ns/visit (out=) | x limit/thread | x limit/thread, fastest "
          "| +argmax ms "
          "| roipool.torch ms | torch / out= | threads default ms | threads out= ms "
          "| threads default / out= | 1->N scaling out= |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["forward"]:
        sct = scaling_cell(res, r, "ratio_out")
        L.append(
            f"| {r['workload']} | {r['threads']} | {r['ns_per_visit']:.4f} | "
            f"{'-' if r['workload'].startswith('tiny') else format(r['x_limit_per_thread'], '.2f')} | "
            f"{'-' if r['workload'].startswith('tiny') else format(r['x_limit_best_per_thread'], '.2f')} | "
            f"{fmt_ms(r['roipool_argmax_ms'])} | {fmt_ms(r.get('roipool_torch_ms'))} | "
            f"{fmt(r.get('torch_over_out'), '.2f')} | {fmt_ms(r.get('pythreads_default_ms'))} | "
            f"{fmt_ms(r.get('pythreads_out_ms'))} | "
            f"{fmt(r.get('pythreads_default_over_out'), '.2f')} | {sct} |")
    floors = {r["workload"]: r["write_out_floor_ms"] for r in res["forward"]
              if "write_out_floor_ms" in r}
    if floors:
        L += ["", "Memory floor of the forward with out= (numpy `out.fill(0)`, 1 thread, "
              "writing the output once): " + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in floors.items())]
    if res["backward"]:
        L += ["", "## Backward", "",
              "| workload | threads | roipool ms (default) | ms (out=) | ns/grad element (out=) "
              "| read floor ms | torchvision ms | x tv |"
              + (" tv autograd fwd+bwd - fwd ms |" if res["autograd"] else ""),
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
              + (" ---: |" if res["autograd"] else "")]
        for b in res["backward"]:
            L.append(f"| {b['workload']} | {b['threads']} | {fmt_ms(b['roipool_default_ms'])} | "
                     f"{fmt_ms(b['roipool_out_ms'])} | {b['ns_per_grad_element']:.3f} | "
                     f"{fmt_ms(b.get('read_bwd_inputs_floor_ms'))} | "
                     f"{fmt_ms(b.get('torchvision_ms'))} | "
                     f"{fmt(b.get('speedup_torchvision'), '.1f')} |"
                     + (f" {fmt_ms(b.get('torchvision_autograd_bwd_ms'))} |"
                        if res["autograd"] else ""))
    if res["tiny_default_us"]:
        L += ["", "Tiny, default call (`roipool.roi_pooling(data, rois, (2, 2), scale)`: "
              "validation and allocation included, OpenMP default threads): "
              + ", ".join(f"{k} {u:.2f} us" for k, u in res["tiny_default_us"].items())]
    L += ["", "## Targets", "", "| target | measured | result |", "| --- | --- | --- |"]
    L += [f"| {n} | {t} | {s} |" for n, t, s in res["targets"]]
    L += ["", "## Checks (before timing)", ""]
    L += [f"- {'ok' if c['ok'] else 'FAIL'}: {c['check']}: {c['detail']}" for c in res["checks"]]
    missing = {k: w for k, w in res["peers_missing"].items()}
    if missing:
        L += [""] + [f"- peer {k} not run: {w}" for k, w in missing.items()]
    return "\n".join(L) + "\n"


def scaling_cell(res, row, key):
    """The 1->N scaling figure, shown on the N-thread row of a workload."""
    sc = res["scaling"].get(row["workload"])
    return f"{sc[key]:.2f}x" if sc and row["threads"] == sc["to"] else ""


def fmt_ms(v):
    if v is None:
        return "-"
    if v < 0.1:
        return f"{v * 1e3:.2f} us"
    return f"{v:.3f}" if v < 100 else f"{v:.1f}"


def fmt_load(la):
    return "?" if not la else "/".join(f"{x:.2f}" for x in la)


def chart(res, path):
    """Bar chart of speed-up per workload vs each peer (log scale). False if
    matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    allc = max(r["threads"] for r in res["forward"])
    series = []
    for peer, name in PEERS.items():
        label = f"default call vs {name} fwd"
        for nt in sorted({1, allc}):
            vals = {r["workload"]: r.get(f"speedup_{peer}") for r in res["forward"]
                    if r["threads"] == nt}
            if any(v for v in vals.values()):
                series.append((f"{label}, {nt} thread{'s' if nt > 1 else ''}", vals))
    for nt in sorted({1, allc}):
        vals = {b["workload"]: b.get("speedup_torchvision") for b in res["backward"]
                if b["threads"] == nt}
        if any(v for v in vals.values()):
            series.append((f"vs torchvision bwd, {nt} thread{'s' if nt > 1 else ''}", vals))
    if not series:
        return False
    names = list(dict.fromkeys(r["workload"] for r in res["forward"]))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(names)), 4.5))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(names))]
        ys = [vals.get(n) or 0 for n in names]
        bars = ax.bar(xs, ys, width, label=label)
        for b_, y in zip(bars, ys):
            if y:
                ax.annotate(f"{y:.0f}" if y >= 10 else f"{y:.1f}", (b_.get_x() + b_.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=6)
    for peer, ls in zip(TARGET_FWD_VS_PEER, ("--", "-.", (0, (1, 1)))):
        t = TARGET_FWD_VS_PEER[peer]
        ax.axhline(t, color="k", ls=ls, lw=0.8, label=f"fwd target {t:g}x {PEERS[peer]}")
    ax.axhline(TARGET_BWD_VS_TV, color="grey", ls=":", lw=0.8, label=f"bwd target {TARGET_BWD_VS_TV:g}x")
    ax.axhline(1, color="k", lw=0.5)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("speed-up of roipool (peer median / roipool median)")
    m = res["machine"]
    ax.set_title(f"roipool {m['versions']['roipool']} ({m['isa']}), {m['cpu']}, {m['cores']} cores, "
                 f"{m['date'][:10]}", fontsize=9)
    top = max(v for _, vals in series for v in vals.values() if v)
    ax.set_ylim(top=max(top, *TARGET_FWD_VS_PEER.values()) * 1.6)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def history_line(res):
    return {
        "date": res["machine"]["date"], "git": res["machine"]["git"], "quick": res["quick"],
        "isa": res["machine"]["isa"], "cpu": res["machine"]["cpu"], "cores": res["machine"]["cores"],
        "versions": res["machine"]["versions"], "limit_ns": res["limit"]["ns_per_element"],
        "forward": {f"{r['workload']}@{r['threads']}": {
            k: r[k] for k in ("roipool_default_ms", "roipool_out_ms", "ns_per_visit",
                              "speedup_torchvision", "speedup_ort", "speedup_opencv",
                              "speedup_openvino", "speedup_openvino_bf16")
            if r.get(k) is not None}
            for r in res["forward"]},
        "backward": {f"{b['workload']}@{b['threads']}": {
            k: b[k] for k in ("roipool_out_ms", "speedup_torchvision") if b.get(k) is not None}
            for b in res["backward"]},
        "scaling": {k: v["ratio"] for k, v in res["scaling"].items()},
        "tiny_default_us": res["tiny_default_us"],
        "targets": {n: s for n, _, s in res["targets"]},
    }


