"""The same bits for any num_threads, and from several Python threads at once."""
import threading

import numpy as np
import pytest

import roipool
from roipool._reference import forward as ref_forward


def workload(seed, N=2, C=48, H=24, W=30, R=300, dtype=np.float32):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((N, C, H, W)).astype(dtype)
    wh = np.exp(rng.uniform(np.log(8), np.log(8 * W), (R, 2)))
    x1 = rng.uniform(-20, 8 * W, R)
    y1 = rng.uniform(-20, 8 * H, R)
    rois = np.column_stack([rng.integers(0, N, R), x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]])
    return data, rois.astype(dtype)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_result_for_1_2_3_threads(dtype):
    data, rois = workload(1, dtype=dtype)
    results = [roipool.roi_pooling(data, rois, (7, 7), 0.125, return_argmax=True, num_threads=t)
               for t in (1, 2, 3)]
    results.append(roipool.roi_pooling(data, rois, (7, 7), 0.125, return_argmax=True))
    for out, am in results[1:]:
        np.testing.assert_array_equal(bits(out), bits(results[0][0]))
        np.testing.assert_array_equal(am, results[0][1])
    # and those are the rule's values (checked on a slice: the reference is slow)
    want = ref_forward(data, rois[:25], (7, 7), 0.125)
    np.testing.assert_array_equal(results[0][0][:25], want[0])
    np.testing.assert_array_equal(results[0][1][:25], want[1])


def test_more_threads_than_work():
    data, rois = workload(2, C=1, R=1)
    for t in (1, 2, 3, 16):
        out, am = roipool.roi_pooling(data, rois, 2, 0.125, return_argmax=True, num_threads=t)
        want = ref_forward(data, rois, 2, 0.125)
        np.testing.assert_array_equal(out, want[0])
        np.testing.assert_array_equal(am, want[1])


def test_four_python_threads_at_once():
    cases = [workload(10 + i, C=16 + 8 * i, R=120) for i in range(4)]
    serial = [roipool.roi_pooling(d, r, (5, 4), 0.125, return_argmax=True, num_threads=1)
              for d, r in cases]
    grads = [np.random.default_rng(i).standard_normal(s[0].shape).astype(np.float32)
             for i, s in enumerate(serial)]
    serial_bw = [roipool.roi_pooling_backward(g, r, s[1], d.shape, num_threads=1)
                 for g, s, (d, r) in zip(grads, serial, cases)]
    barrier = threading.Barrier(4)
    failures = []

    def worker(i):
        d, r = cases[i]
        barrier.wait()
        for k in range(25):
            out, am = roipool.roi_pooling(d, r, (5, 4), 0.125, return_argmax=True,
                                          num_threads=1 + (i + k) % 3)
            gb = roipool.roi_pooling_backward(grads[i], r, am, d.shape, num_threads=1 + k % 2)
            if not (np.array_equal(bits(out), bits(serial[i][0]))
                    and np.array_equal(am, serial[i][1])
                    and np.array_equal(bits(gb), bits(serial_bw[i]))):
                failures.append((i, k))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert failures == []
