"""torchvision's detectors with RoIAlign on its own CPU kernel and on roipool
(patch_torchvision): the whole model and its poolers alone.

    python bench/bench_torch_align.py [--repeat 3] [--min-size 800] [--threads 1,2]
                                      [--out bench/results/torch_align_latest.md]

For ``fasterrcnn_resnet50_fpn`` and ``maskrcnn_resnet50_fpn`` (random weights,
``weights=None, weights_backbone=None``: no download; eval mode; a score
threshold of 0 so that the box head keeps 100 detections per image and Mask
R-CNN's mask pooler sees a realistic 100 boxes; one 3x``min_size``x4/3 image),
at each thread count (``torch.set_num_threads``, which roipool's kernel
follows):

* end to end: ``model([image])`` under ``torch.inference_mode()``, unpatched
  and patched samples alternating (each round in another order);
* the poolers alone: each ``MultiScaleRoIAlign`` (``roi_heads.box_roi_pool``,
  1000 proposals, 7x7, sampling_ratio 2; ``roi_heads.mask_roi_pool``, 100
  boxes, 14x14) called on the very inputs the model gave it (captured with a
  forward pre-hook), unpatched and patched alternating.

Before timing, the detections (boxes, scores, labels, masks) and each pooler's
output are checked to be bit-identical patched and unpatched. Medians of
``--repeat`` samples; speed-up = unpatched / patched, within the same run.
"""
import argparse
import datetime
import os
import platform
import statistics
import time

import torch
import torchvision

import roipool
import roipool.torch as rt
from bench_onnx import cpu_name
from bench_torch import git_commit

MODELS = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn")


def build(name, min_size):
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, name)(
        weights=None, weights_backbone=None, min_size=min_size, max_size=min_size * 4 // 3 + 1,
        box_score_thresh=0.0)
    model.eval()
    poolers = {"box_roi_pool": model.roi_heads.box_roi_pool}
    if model.roi_heads.has_mask():
        poolers["mask_roi_pool"] = model.roi_heads.mask_roi_pool
    captured = {}
    for key, module in poolers.items():
        module.register_forward_pre_hook(
            lambda m, args, key=key: captured.__setitem__(key, args))
    return model, poolers, captured


def detect(model, image):
    with torch.inference_mode():
        return model([image])


def pool(module, args):
    with torch.inference_mode():
        return module(*args)


def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def alternate(calls, repeat):
    """{label: [seconds]} with the calls alternating, each round in another order."""
    times = {k: [] for k in calls}
    order = list(calls)
    for r in range(repeat):
        for k in (order if r % 2 == 0 else order[::-1]):
            patch, fn = calls[k]
            patch()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    rt.unpatch_torchvision()
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-size", type=int, default=800, help="image height (torchvision's "
                    "default transform size is 800)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    g = torch.Generator().manual_seed(1)
    image = torch.rand((3, args.min_size, args.min_size * 4 // 3), generator=g)
    before = torch.get_num_threads()
    load = os.getloadavg()
    rows = []
    try:
        for name in args.models:
            model, poolers, captured = build(name, args.min_size)
            want = detect(model, image)
            inputs = dict(captured)
            rt.patch_torchvision()
            got = detect(model, image)
            if not same(got, want):
                raise SystemExit(f"{name}: detections differ patched and unpatched: not timing")
            for key, module in poolers.items():
                pooled = pool(module, inputs[key])
                rt.unpatch_torchvision()
                if not same(pooled, pool(module, inputs[key])):
                    raise SystemExit(f"{name}.{key}: pooler differs: not timing")
                rt.patch_torchvision()
            rt.unpatch_torchvision()
            for t in threads:
                torch.set_num_threads(t)
                cases = [("end to end", lambda: detect(model, image))]
                for key, module in poolers.items():
                    rois = sum(len(b) for b in inputs[key][1])
                    cases.append((f"{key} ({rois} boxes)",
                                  lambda m=module, a=inputs[key]: pool(m, a)))
                for label, fn in cases:
                    times = alternate({"torchvision": (rt.unpatch_torchvision, fn),
                                       "patched": (rt.patch_torchvision, fn)}, args.repeat)
                    tv, rp = (statistics.median(times[k]) * 1e3 for k in ("torchvision",
                                                                          "patched"))
                    rows.append((name, t, label, tv, rp))
                    print(f"{name:24s} {t} thr  {label:28s} torchvision {tv:9.1f} ms  "
                          f"patched {rp:9.1f} ms  x{tv / rp:5.2f}", flush=True)
    finally:
        torch.set_num_threads(before)
        rt.unpatch_torchvision()
    load_after = os.getloadavg()
    md = [
        "# torchvision's detectors: RoIAlign on torchvision's CPU kernel vs roipool "
        "(patch_torchvision)",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC with "
        f"`python bench/bench_torch_align.py --repeat {args.repeat} --min-size {args.min_size} "
        f"--threads {args.threads}` (git {git_commit()}); CPU {cpu_name()}; roipool "
        f"{roipool.__version__}, torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, Python {platform.python_version()}. Load average "
        f"before/after: {' '.join(f'{v:.2f}' for v in load)} / "
        f"{' '.join(f'{v:.2f}' for v in load_after)} (a shared machine: only the ratios, "
        "taken within the run, mean much).",
        "",
        f"One {args.min_size}x{args.min_size * 4 // 3} float32 image, random weights, eval "
        "mode, inference_mode; detections and pooler outputs checked bit-identical "
        f"patched and unpatched first; medians of {args.repeat} alternating samples.",
        "",
        "| model | threads | what | torchvision (ms) | patched (ms) | speed-up |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    md += [f"| {n} | {t} | {label} | {a:.1f} | {b:.1f} | {a / b:.2f}x |"
           for n, t, label, a, b in rows]
    text = "\n".join(md) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
