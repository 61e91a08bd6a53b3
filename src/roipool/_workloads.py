"""The shared benchmark workloads (WORKLOADS.md) and their visit counts.

Used by `python -m roipool` and by bench/bench.py, so both time the same
inputs."""
import time

import numpy as np

# name: (N, C, H, W), spatial_scale, R, pooled
WORKLOADS = {
    "vgg16-frcnn": ((1, 512, 38, 50), 1 / 16, 2000, 7),
    "vgg16-frcnn-300": ((1, 512, 38, 50), 1 / 16, 300, 7),
    "r50-c4": ((1, 1024, 38, 50), 1 / 16, 512, 14),
    "batch4": ((4, 256, 64, 64), 1 / 8, 1024, 7),
    "tiny": ((1, 1, 8, 6), 1.0, 1, 2),
    "tiny-0.7": ((1, 1, 8, 6), 0.7, 1, 2),
}


def make(name, dtype=np.float32):
    """(data, rois, pooled_size, spatial_scale) of a workload.

    Data: standard normal from default_rng(0); then, from the same generator,
    per ROI a uniform batch index, log-uniform box width and height between
    16 px and the image size (H, W) / scale, and x1, y1 uniform over the
    positions where the box fits. The tiny workloads are the seed example."""
    shape, scale, R, pooled = WORKLOADS[name]
    if name.startswith("tiny"):
        data = np.arange(48, dtype=dtype).reshape(shape)
        return data, np.array([[0, 0, 0, 4, 4]], dtype), (pooled, pooled), scale
    N, C, H, W = shape
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    img_h, img_w = H / scale, W / scale
    b = rng.integers(0, N, R)
    bw = np.exp(rng.uniform(np.log(16), np.log(img_w), R))
    bh = np.exp(rng.uniform(np.log(16), np.log(img_h), R))
    x1 = rng.uniform(0, img_w - bw)
    y1 = rng.uniform(0, img_h - bh)
    rois = np.stack([b, x1, y1, x1 + bw - 1, y1 + bh - 1], axis=1).astype(dtype)
    return data, rois, (pooled, pooled), scale


# RoIAlign (WORKLOADS.md, "RoIAlign workloads"): (N, C, H, W), spatial_scale,
# R, box side range in px (None: up to the image), pooled, sampling_ratio, aligned
ALIGN_WORKLOADS = {
    "fpn-p2": ((1, 256, 200, 272), 1 / 4, 500, (16, 112), 7, 2, False),
    "mask-p2": ((1, 256, 200, 272), 1 / 4, 100, (16, 112), 14, 2, False),
    "d2-c4": ((1, 1024, 50, 68), 1 / 16, 300, (16, None), 14, 0, True),
}


def make_align(name, dtype=np.float32):
    """(data, rois, pooled_size, spatial_scale, sampling_ratio, aligned) of a
    RoIAlign workload: data as make(); then per ROI a uniform batch index,
    log-uniform width and height over the side range, x1 = u * (image width
    - width), y1 likewise, x2 = x1 + width, y2 = y1 + height."""
    shape, scale, R, (lo, hi), pooled, ratio, aligned = ALIGN_WORKLOADS[name]
    N, C, H, W = shape
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    img_h, img_w = H / scale, W / scale
    b = rng.integers(0, N, R)
    bw = np.exp(rng.uniform(np.log(lo), np.log(hi or img_w), R))
    bh = np.exp(rng.uniform(np.log(lo), np.log(hi or img_h), R))
    x1 = rng.uniform(0, 1, R) * (img_w - bw)
    y1 = rng.uniform(0, 1, R) * (img_h - bh)
    rois = np.stack([b, x1, y1, x1 + bw, y1 + bh], axis=1).astype(dtype)
    return data, rois, (pooled, pooled), scale, ratio, aligned


def visits(data_shape, rois, pooled_size, spatial_scale):
    """Elements read by the rule: the sum over ROIs, channels and bins of the
    clipped bin area, from the kernel's own bin bounds (float32 rules)."""
    from roipool import _roi_pool
    from roipool._roi_pool import Rounding, Status

    N, C, H, W = data_shape
    PH, PW = pooled_size
    r = np.ascontiguousarray(rois, dtype=np.float32)
    geom = np.empty((len(r), 1 + 2 * PH + 2 * PW), np.intp)
    status = _roi_pool.bin_bounds(r, N, H, W, float(np.float32(spatial_scale)), spatial_scale,
                                  False, Rounding.RMODE_NONE, PH, PW, geom)
    if status != Status.OK:
        raise ValueError(f"workload ROIs are invalid (status {status})")
    hs, he = geom[:, 1:1 + PH], geom[:, 1 + PH:1 + 2 * PH]
    ws, we = geom[:, 1 + 2 * PH:1 + 2 * PH + PW], geom[:, 1 + 2 * PH + PW:]
    area = np.clip(he - hs, 0, None)[:, :, None] * np.clip(we - ws, 0, None)[:, None, :]
    return int(area.sum()) * C


def time_samples(fn, repeat=7, number=1, warmup=1):
    """Seconds per call of each of `repeat` timings of `number` calls each,
    after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return times


def median_time(fn, repeat=7, number=1, warmup=1):
    """Median seconds per call over `repeat` timings of `number` calls each."""
    return float(np.median(time_samples(fn, repeat, number, warmup)))


def simd_max_ns_per_element(repeat=21):
    """The machine's limit for one core: ns per element of np.max over a
    cache-resident 1 MiB float32 array."""
    a = np.random.default_rng(1).standard_normal(262144, dtype=np.float32)
    return median_time(a.max, repeat=repeat, number=50) / a.size * 1e9
