#!/usr/bin/env python3
"""Generate golden RoIAlign data from the real MXNet 1.9.1 (contrib.ROIAlign).

Runs in MXNet's own virtualenv, not in roipool's (see make_mxnet_golden.py):

    python3 -m venv /tmp/mxvenv
    /tmp/mxvenv/bin/pip install mxnet==1.9.1 'numpy<1.24'
    /tmp/mxvenv/bin/python tools/make_mxnet_align_golden.py

Writes tests/data/mxnet_align_golden.npz (arrays plus a JSON "meta" string);
tests/test_mxnet_align_golden.py compares roipool (compat="mxnet") and its
reference with it and never imports MXNet.

Cases: float32, float64 and float16 data; scales 1, 0.5, 1/16 and the two
where MXNet's float32 scale differs from torchvision's cast in float64 (0.7,
0.3); sample_ratio -1, 1, 2, 3; aligned False and True. Forward with
``mx.nd.contrib.ROIAlign``; backward (float32, float64) with mx.autograd.
Boxes are kept at a positive size: MXNet aborts the process on an aligned box
of size <= 0 (docs/semantics.md, "RoIAlign, bad input").
"""
import itertools
import json
import os

import numpy as np
import mxnet as mx
from mxnet import autograd

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, os.pardir, "tests", "data", "mxnet_align_golden.npz")
SEED = 20261205
SCALES = (1.0, 0.5, 0.0625, 0.7, 0.3)
RATIOS = (-1, 1, 2, 3)


def case_arrays(rng, dtype, scale, N=2, C=2, H=7, W=9, R=5):
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    image = np.array([W, H], np.float64) / scale
    lo = rng.uniform(-0.2, 1.0, (R, 2)) * image
    size = rng.uniform(0.05, 0.8, (R, 2)) * image
    rois = np.column_stack([rng.integers(0, N, R), lo, lo + size]).astype(dtype)
    return data, rois


def forward(data, rois, pooled, scale, ratio, aligned):
    x = mx.nd.array(data, dtype=data.dtype)
    r = mx.nd.array(rois, dtype=rois.dtype)
    return mx.nd.contrib.ROIAlign(x, r, pooled_size=pooled, spatial_scale=scale,
                                  sample_ratio=ratio, aligned=aligned).asnumpy()


def backward(data, rois, pooled, scale, ratio, aligned, grad_out):
    x = mx.nd.array(data, dtype=data.dtype)
    r = mx.nd.array(rois, dtype=rois.dtype)
    x.attach_grad()
    with autograd.record():
        y = mx.nd.contrib.ROIAlign(x, r, pooled_size=pooled, spatial_scale=scale,
                                   sample_ratio=ratio, aligned=aligned)
    y.backward(mx.nd.array(grad_out, dtype=grad_out.dtype))
    return x.grad.asnumpy()


def main():
    rng = np.random.default_rng(SEED)
    arrays, cases = {}, []
    pooled = (3, 2)
    for i, (dtype, scale, ratio, aligned) in enumerate(itertools.product(
            ("float32", "float64", "float16"), SCALES, RATIOS, (False, True))):
        data, rois = case_arrays(rng, np.dtype(dtype), scale)
        key = f"c{i}"
        arrays[f"{key}_data"], arrays[f"{key}_rois"] = data, rois
        arrays[f"{key}_out"] = forward(data, rois, pooled, scale, ratio, aligned)
        has_grad = dtype != "float16"
        if has_grad:
            g = rng.standard_normal(arrays[f"{key}_out"].shape).astype(dtype)
            arrays[f"{key}_grad_out"] = g
            arrays[f"{key}_grad"] = backward(data, rois, pooled, scale, ratio, aligned, g)
        cases.append({"key": key, "dtype": dtype, "scale": scale, "sampling_ratio": ratio,
                      "aligned": aligned, "pooled": list(pooled), "has_grad": has_grad,
                      "name": f"{dtype}-s{scale:g}-r{ratio}-{'aligned' if aligned else 'plain'}"})
    meta = {"mxnet_version": mx.__version__, "numpy_version": np.__version__, "seed": SEED,
            "operator": "mx.nd.contrib.ROIAlign", "cases": cases}
    np.savez_compressed(OUT, meta=json.dumps(meta), **arrays)
    print(f"{len(cases)} cases -> {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
