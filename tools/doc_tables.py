"""The benchmark tables of README.md and docs/*.md, generated from the committed
bench/results/*.json: every number a reader sees comes from one recorded run
that names its CPU.

A table lives between two marker comments in a Markdown file:

    <!-- doc-table: forward bench/results/latest.json -->
    ... (generated: do not edit by hand)
    <!-- /doc-table -->

    python tools/doc_tables.py            # rewrite every table from its JSON
    python tools/doc_tables.py --check    # exit 1 if a table and its JSON disagree

tests/test_docs.py runs the check.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("README.md", "docs/performance.md")
MARKER = re.compile(
    r"(<!-- doc-table: (?P<kind>[\w-]+) (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- /doc-table -->)",
    re.S)
PEERS = (("torchvision", "torchvision"), ("ort", "ONNX Runtime"), ("opencv", "OpenCV dnn"),
         ("openvino", "OpenVINO"))


def _three_figures(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_ms(ms):
    """About three significant figures; below 0.1 ms in microseconds."""
    return f"{_three_figures(ms * 1000)} us" if ms < 0.1 else _three_figures(ms)


def fmt_x(ratio):
    return f"{ratio:.1f}x"


def machine_line(res, src):
    """Where the numbers come from: CPU (as recorded), flags, threads, date, version."""
    return (_machine(res, src) + f"medians of {res['repeat']} runs (peers "
            f"{res['peer_repeat']}), every ratio a peer's median over roipool's from the "
            f"same run.")


def _machine(res, src):
    m = res["machine"]
    cpu = m["cpu"]
    ident = ", ".join(f"{k} {v}" for k, v in m.get("cpu_id", {}).items())
    if ident:
        cpu += f" ({ident})"
    else:
        cpu += " (this run recorded no more than that name: model and family unknown)"
    flags = " ".join(m["cpu_flags"]) if m.get("cpu_flags") else "not recorded"
    return (f"Run: `{src}`, {m['date'][:10]}, roipool {m['versions']['roipool']}. "
            f"CPU: {cpu}; {m['cores']} cores; CPU flags: {flags}; roipool's SIMD path "
            f"{m['isa']}; build flags `{' '.join(dict.fromkeys(m['build_flags'].split()))}`; "
            f"threads per row as shown; float32; ")


def table_forward(res, src, peers=PEERS, out_column=True):
    head = ["workload", "threads", "**roipool ms**"]
    if out_column:
        head.append("out= ms")
    head += [f"x {name}" for _, name in peers]
    lines = ["| " + " | ".join(head) + " |",
             "| --- | " + " | ".join("---:" for _ in head[1:]) + " |"]
    for row in res["forward"]:
        cells = [row["workload"], str(row["threads"]),
                 f"**{fmt_ms(row['roipool_default_ms'])}**"]
        if out_column:
            cells.append(fmt_ms(row["roipool_out_ms"]))
        for key, _ in peers:
            ratio = row.get(f"speedup_{key}")
            cells.append("-" if ratio is None else fmt_x(ratio))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_bf16(res, src):
    lines = ["| workload | threads | roipool bfloat16 ms | / roipool float32 | "
             "OpenVINO bf16 ms | x OpenVINO bf16 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in res["forward"]:
        if row.get("roipool_bf16_ms") is None:
            continue
        ov = row.get("openvino_bf16_ms")
        lines.append(
            f"| {row['workload']} | {row['threads']} | {fmt_ms(row['roipool_bf16_ms'])} | "
            f"{row['roipool_bf16_ms'] / row['roipool_default_ms']:.2f} | "
            f"{'-' if ov is None else fmt_ms(ov)} | "
            f"{'-' if ov is None else fmt_x(ov / row['roipool_bf16_ms'])} |")
    return lines


ALIGN_PEERS = (("torchvision", "torchvision"), ("ort", "ONNX Runtime"), ("openvino", "OpenVINO"))


def table_align(res, src):
    """bench/bench_align.py's forward rows: roipool's default and out= calls,
    each peer's median over the default call's, ns per sample against the
    limit (bench/README.md)."""
    head = ["workload", "threads", "**roipool ms**", "out= ms", "ns / sample", "x limit"]
    head += [f"x {name}" for _, name in ALIGN_PEERS]
    lines = ["| " + " | ".join(head) + " |",
             "| --- | " + " | ".join("---:" for _ in head[1:]) + " |"]
    for name, w in res["workloads"].items():
        rows = w["rows"]
        for threads in sorted({int(k.rsplit("/", 1)[1]) for k in rows}):
            own = rows.get(f"fwd/roipool_default/{threads}")
            if own is None:
                continue
            cells = [name, str(threads), f"**{fmt_ms(own['median_ms'])}**",
                     fmt_ms(rows[f"fwd/roipool_out/{threads}"]["median_ms"]),
                     _three_figures(own["ns_per_sample"]), _three_figures(own["x_limit"])]
            for key, _ in ALIGN_PEERS:
                peer = rows.get(f"fwd/{key}/{threads}")
                cells.append("-" if peer is None else fmt_x(peer["median_ms"] / own["median_ms"]))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def align_machine_line(res, src):
    counts = sorted({len(r["samples_s"]) for w in res["workloads"].values()
                     for r in w["rows"].values()})
    runs = "-".join(str(c) for c in (counts[0], counts[-1])) if len(counts) > 1 else counts[0]
    return (_machine(res, src) + f"medians of {runs} runs, every ratio a peer's median over "
            "roipool's from the same run; x limit: ns per sample over "
            f"{res['limit_ns_per_sample_1core']:.3f} ns divided by the threads "
            "(bench/README.md).")


KINDS = {
    "headline": lambda res, src: table_forward(res, src, out_column=False),
    "forward": table_forward,
    "bf16": table_bf16,
    "align": table_align,
}
LINES = {"align": align_machine_line}


def render(kind, src):
    res = json.loads((ROOT / src).read_text())
    line = LINES.get(kind, machine_line)(res, src)
    return "\n".join([line, ""] + KINDS[kind](res, src)) + "\n"


def regenerate(text):
    """text with every marked table rebuilt from its JSON."""
    return MARKER.sub(lambda m: m.group(1) + render(m.group("kind"), m.group("src"))
                      + m.group(5), text)


def stale_in(name, text):
    """[(name, kind, source)] of each table in text that differs from its JSON."""
    return [(name, m.group("kind"), m.group("src")) for m in MARKER.finditer(text)
            if m.group("body") != render(m.group("kind"), m.group("src"))]


def stale_tables(files=FILES):
    """[(file, kind, source)] of every table that differs from its JSON."""
    return [t for name in files for t in stale_in(name, (ROOT / name).read_text())]


def tables(files=FILES):
    """[(file, kind, source)] of every marked table."""
    return [(name, m.group("kind"), m.group("src")) for name in files
            for m in MARKER.finditer((ROOT / name).read_text())]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if a table is stale")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_tables()
        for name, kind, src in stale:
            print(f"{name}: the {kind} table differs from {src}; "
                  f"run python tools/doc_tables.py", file=sys.stderr)
        return 1 if stale else 0
    for name in FILES:
        path = ROOT / name
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            path.write_text(new)
            print(f"rewrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
