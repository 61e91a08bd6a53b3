"""roipool.onnx.InferenceSession against the real onnxruntime (issue 18).

Every output of every model (tools/onnx_models.py) is compared with a plain
``onnxruntime.InferenceSession``'s bit for bit, on several box counts, and
each test also checks who computed the pools (roipool, or ORT's own kernel
where it must answer), so a session that silently fell back to plain ORT
would fail. Skips without onnx/onnxruntime, fails without them in CI's peer
phase (helpers.import_peer).
"""
import pathlib
import threading

import numpy as np
import pytest

from helpers import bits, import_peer, import_tool

ort = import_peer("onnxruntime")
onnx = import_peer("onnx")
import roipool  # noqa: E402
import roipool.onnx as ro  # noqa: E402
from roipool.onnx import _session  # noqa: E402

M = import_tool("onnx_models")
CPU = ["CPUExecutionProvider"]
BOX_COUNTS = (0, 1, 7, 64)
InvalidArgument = ort.capi.onnxruntime_pybind11_state.InvalidArgument
roi_pooling = roipool.roi_pooling  # the tests' own calls, not seen by pool_calls


@pytest.fixture
def pool_calls(monkeypatch):
    """The num_threads of every roipool.roi_pooling call the sessions make."""
    calls = []

    def spy(*args, **kw):
        calls.append(kw.get("num_threads"))
        return roi_pooling(*args, **kw)

    monkeypatch.setattr(_session.roipool, "roi_pooling", spy)
    return calls


def assert_same(want, got):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert isinstance(b, np.ndarray)
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert np.array_equal(bits(a), bits(b))


def sessions(model, **kw):
    return (ort.InferenceSession(model, providers=CPU),
            ro.InferenceSession(model, providers=CPU, **kw))


def _pool_feeds(scale, n=2, c=4, h=20, w=17, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    return [{"X": x, "rois": M.rois(rng, k, n, h, w, scale)} for k in BOX_COUNTS]


def _head_feeds():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((3, 16, 24, 30), dtype=np.float32)
    # a different batch size on each call (dynamic N) as well as a box count
    return [{"image": img[:n], "rois": M.rois(rng, k, n, 24, 30, 0.25)}
            for n, k in zip((1, 2, 3, 2), BOX_COUNTS)]


def _two_level_feeds():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 24, 30), dtype=np.float32)
    return [{"X": x, "rois1": M.rois(rng, k, 2, 24, 30, 0.25),
             "rois2": M.rois(rng, k + 3, 2, 12, 15, 0.125)} for k in BOX_COUNTS]


def _rois_in_graph_feeds():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 11, 13), dtype=np.float32)
    return [{"X": x, "boxes": np.ascontiguousarray(M.rois(rng, k, 1, 11, 13, 0.7)[:, 1:])}
            for k in BOX_COUNTS]


def _chained_feeds():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 20, 22), dtype=np.float32)
    return [{"X": x, "rois": M.rois(rng, max(k, 1), 2, 20, 22, 0.5),
             "rois2": M.rois(rng, k, max(k, 1), 6, 6, 1.0)} for k in BOX_COUNTS]


# name: (model, feeds, pools per call, ORT parts)
MODELS = {
    "pool-only-1": (lambda: M.pool_only((3, 2), 1.0), lambda: _pool_feeds(1.0), 1, 0),
    "pool-only-0.7": (lambda: M.pool_only((3, 2), 0.7), lambda: _pool_feeds(0.7), 1, 0),
    "pool-only-1/16": (lambda: M.pool_only((7, 7), 1 / 16),
                       lambda: _pool_feeds(1 / 16, h=38, w=50), 1, 0),
    "head-dynamic-batch": (lambda: M.head(scale=0.25), _head_feeds, 1, 2),
    "two-levels": (M.two_levels, _two_level_feeds, 2, 2),
    "rois-in-graph": (M.rois_in_graph, _rois_in_graph_feeds, 1, 1),
    "chained": (M.chained, _chained_feeds, 2, 3),
}


@pytest.mark.parametrize("name", MODELS)
def test_every_output_is_plain_onnxruntimes(name, pool_calls):
    make, feeds, n_pools, n_parts = MODELS[name]
    plain, ours = sessions(make())
    assert ours.uses_roipool and len(ours._parts) == n_parts
    feeds = feeds()
    for i, feed in enumerate(feeds):
        assert_same(plain.run(None, feed), ours.run(None, feed))
        assert len(pool_calls) == n_pools * (i + 1), "a pool did not run on roipool"


def test_scale_rounds_like_mxnet_where_float64_would_not(pool_calls):
    # float32, scale 0.7: 45 * 0.7f rounds to column 32 in float32, 31 in
    # float64 (docs/semantics.md): ORT multiplies in float32, as roipool does.
    x = np.arange(2 * 40 * 40, dtype=np.float32).reshape(1, 2, 40, 40)
    rois = np.array([[0, 45, 45, 45, 45], [0, 45.5, 3, 52, 9], [0, 2.5, 7.5, 17.5, 21.5]],
                    np.float32)
    plain, ours = sessions(M.pool_only((1, 1), 0.7))
    want = plain.run(None, {"X": x, "rois": rois})[0]
    assert_same([want], ours.run(None, {"X": x, "rois": rois}))
    assert len(pool_calls) == 1
    # the double product (torchvision's rule on float64 data) differs here
    other = roi_pooling(x.astype(np.float64), rois.astype(np.float64), 1, 0.7,
                        compat="torchvision").astype(np.float32)
    assert not np.array_equal(bits(other), bits(want))  # the probe can tell the rules apart


@pytest.mark.parametrize("what", ["nan", "negative-zero"])
def test_ort_kernel_answers_for_nan_and_negative_zero(what, pool_calls):
    # ORT's running max is std::max(value, max): it takes a NaN and drops it
    # at the next value, and of equal values it keeps the last, where
    # roipool's rule keeps the first (only 0.0 / -0.0 have equal values and
    # different bits).
    x = np.ones((1, 1, 4, 4), np.float32)
    if what == "nan":
        x[0, 0, 0] = [5, np.nan, 1, 2]
    else:
        x[0, 0, 0] = [0.0, -0.0, 0.0, -0.0]
        x[0, 0, 1:] = -1
    rois = np.array([[0, 0, 0, 1, 0], [0, 0, 0, 3, 3], [0, 1, 0, 2, 0]], np.float32)
    plain, ours = sessions(M.pool_only((1, 1), 1.0))
    want = plain.run(None, {"X": x, "rois": rois})[0]
    assert not np.array_equal(bits(roi_pooling(x, rois, 1, 1.0)), bits(want))
    assert_same([want], ours.run(None, {"X": x, "rois": rois}))
    assert pool_calls == []
    x[...] = 2
    assert_same(plain.run(None, {"X": x, "rois": rois}), ours.run(None, {"X": x, "rois": rois}))
    assert len(pool_calls) == 1


def test_pool_in_if_body_stays_on_ort(pool_calls):
    plain, ours = sessions(M.pool_in_if())
    assert ours.uses_roipool
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 20, 22), dtype=np.float32)
    for k, cond in zip(BOX_COUNTS, (True, False, True, False)):
        feed = {"X": x, "rois": M.rois(rng, k, 2, 20, 22, 0.5), "cond": np.array(cond)}
        assert_same(plain.run(None, feed), ours.run(None, feed))
    assert len(pool_calls) == len(BOX_COUNTS)  # the top-level pool only


def test_pool_in_function_and_other_types_stay_on_ort(pool_calls):
    plain, ours = sessions(M.pool_in_function())
    assert not ours.uses_roipool
    feed = _pool_feeds(0.5)[2]
    assert_same(plain.run(None, feed), ours.run(None, feed))
    assert pool_calls == []
    # float16: ORT casts to float32 and back around its kernel, not roipool's
    # float16 rule, so the pool stays on ORT
    plain, ours = sessions(M.pool_only((2, 2), 0.5, elem=onnx.TensorProto.FLOAT16))
    assert not ours.uses_roipool
    feed = {k: v.astype(np.float16) for k, v in feed.items()}
    assert_same(plain.run(None, feed), ours.run(None, feed))
    # ONNX allows double MaxRoiPool; ORT has no kernel for it, so both fail alike
    model = M.pool_only((2, 2), 0.5, elem=onnx.TensorProto.DOUBLE)
    with pytest.raises(Exception) as want:
        ort.InferenceSession(model, providers=CPU)
    with pytest.raises(type(want.value)):
        ro.InferenceSession(model, providers=CPU)


def test_model_without_pool_is_one_plain_session():
    model = M._model([onnx.helper.make_node("Relu", ["X"], ["Y"])], [M._t("X", M.F, ["N"])],
                     [M._t("Y", M.F, ["N"])])
    s = ro.InferenceSession(model, providers=CPU)
    assert not s.uses_roipool
    x = np.array([-1, 2], np.float32)
    assert_same([np.maximum(x, 0)], s.run(None, {"X": x}))


@pytest.mark.parametrize("name", MODELS)
def test_inputs_outputs_and_metadata_are_plain_onnxruntimes(name):
    plain, ours = sessions(MODELS[name][0]())

    def args(xs):
        return [(a.name, a.type, a.shape) for a in xs]

    assert args(ours.get_inputs()) == args(plain.get_inputs())
    assert args(ours.get_outputs()) == args(plain.get_outputs())
    assert args(ours.get_overridable_initializers()) == \
        args(plain.get_overridable_initializers())
    fields = ("producer_name", "graph_name", "domain", "description", "graph_description",
              "version", "custom_metadata_map")
    assert [getattr(ours.get_modelmeta(), f) for f in fields] == \
        [getattr(plain.get_modelmeta(), f) for f in fields]


def test_any_subset_of_outputs_runs_only_what_it_needs(pool_calls):
    plain, ours = sessions(M.two_levels())
    feed = _two_level_feeds()[2]
    assert_same(plain.run(["y1"], feed), ours.run(["y1"], feed))
    assert len(pool_calls) == 1
    assert_same(plain.run(["y1", "scores"], feed), ours.run(["y1", "scores"], feed))
    assert len(pool_calls) == 3
    plain, ours = sessions(M.head(scale=0.25))
    feed = _head_feeds()[1]
    assert_same(plain.run(["feats"], feed), ours.run(["feats"], feed))
    assert len(pool_calls) == 3


def test_model_from_a_path(tmp_path, pool_calls):
    path = tmp_path / "m.onnx"
    path.write_bytes(M.head(scale=0.25))
    plain = ort.InferenceSession(str(path), providers=CPU)
    feed = _head_feeds()[2]
    for p in (str(path), pathlib.Path(path)):
        assert_same(plain.run(None, feed), ro.InferenceSession(p).run(None, feed))
    assert len(pool_calls) == 2


def test_bad_inputs_raise_like_onnxruntime_or_roipool():
    plain, ours = sessions(M.pool_only((2, 2), 0.5))
    x = np.ones((1, 2, 6, 6), np.float32)
    rois = np.array([[0, 0, 0, 4, 4]], np.float32)
    for s in (plain, ours):
        with pytest.raises(ValueError, match=r"Required inputs \(\['rois'\]\) are missing"):
            s.run(None, {"X": x})
        with pytest.raises(InvalidArgument, match="Invalid input name: Z"):
            s.run(None, {"X": x, "rois": rois, "Z": x})
        with pytest.raises(InvalidArgument, match="Invalid output name:Q"):
            s.run(["Q"], {"X": x, "rois": rois})
        with pytest.raises(InvalidArgument, match="Unexpected input data type"):
            s.run(None, {"X": x.astype(np.float64), "rois": rois})
        with pytest.raises(InvalidArgument, match="Invalid rank for input: rois"):
            s.run(None, {"X": x, "rois": rois[0]})
        with pytest.raises(InvalidArgument, match="Got invalid dimensions for input: rois"):
            s.run(None, {"X": x, "rois": rois[:, :4].copy()})
    # ORT's kernel refuses a batch index outside the batch: so does roipool, by name
    for bad in ([[1, 0, 0, 4, 4]], [[0, np.nan, 0, 4, 4]], [[0, 0, 0, 1e30, 4]]):
        with pytest.raises(ValueError, match="rois"):
            ours.run(None, {"X": x, "rois": np.array(bad, np.float32)})
    with pytest.raises(Exception, match="roi_batch_id < batch_size"):
        plain.run(None, {"X": x, "rois": np.array([[1, 0, 0, 4, 4]], np.float32)})


def test_inputs_are_never_modified():
    plain, ours = sessions(M.head(scale=0.25))
    for feed in _head_feeds():
        before = {k: v.copy() for k, v in feed.items()}
        ours.run(None, feed)
        for k in feed:
            assert np.array_equal(bits(before[k]), bits(feed[k]))


def test_thread_count_follows_intra_op_threads_unless_given(pool_calls):
    feed = _pool_feeds(0.5)[2]
    model = M.pool_only((2, 2), 0.5)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ro.InferenceSession(model, opts).run(None, feed)
    ro.InferenceSession(model, opts, num_threads=2).run(None, feed)
    ro.InferenceSession(model).run(None, feed)  # 0: ORT's default, roipool's too
    assert pool_calls == [1, 2, None]
    with pytest.raises(ValueError, match="num_threads"):
        ro.InferenceSession(model, num_threads=0)


def test_spinning_is_off_unless_the_options_say():
    model = M.pool_only((2, 2), 0.5)
    opts = ort.SessionOptions()
    s = ro.InferenceSession(model, opts)
    assert s.get_session_options().get_session_config_entry(_session.SPINNING) == "0"
    opts = ort.SessionOptions()
    opts.add_session_config_entry(_session.SPINNING, "1")
    s = ro.InferenceSession(model, opts)
    assert s.get_session_options().get_session_config_entry(_session.SPINNING) == "1"


def test_denormals_as_zero_keep_the_pools_on_ort():
    # with DAZ set, ORT's threads compare subnormals as 0: its kernel answers
    opts = ort.SessionOptions()
    opts.add_session_config_entry(_session.DENORMAL_AS_ZERO, "1")
    assert not ro.InferenceSession(M.pool_only((2, 2), 0.5), opts).uses_roipool


def test_python_threads_share_one_session():
    plain, ours = sessions(M.head(scale=0.25))
    feeds = _head_feeds()
    wants = [plain.run(None, f) for f in feeds]
    errors = []

    def worker(seed):
        try:
            for i in range(12):
                j = (seed + i) % len(feeds)
                assert_same(wants[j], ours.run(None, feeds[j]))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_rois_from_an_overridable_initializer(pool_calls):
    plain, ours = sessions(M.const_rois())
    for get in ("get_inputs", "get_overridable_initializers"):
        assert [(a.name, a.type, a.shape) for a in getattr(ours, get)()] == \
            [(a.name, a.type, a.shape) for a in getattr(plain, get)()]
    feeds = _pool_feeds(0.5)
    bias = np.full((1, 1, 1, 1), -2, np.float32)
    for feed in ({"X": feeds[0]["X"]}, feeds[2], dict(feeds[1], bias=bias)):
        assert_same(plain.run(None, feed), ours.run(None, feed))
    assert len(pool_calls) == 3
