"""The hypothesis strategy that draws specs (see cases.py): mostly valid calls,
with a weighted share of every kind of broken argument."""
from .cases import (BAD_ALIGNED, BAD_DT, BAD_POOLED, BAD_RATIOS, BAD_ROI_DT, BAD_SCALES,
                    BAD_THREADS, EDGE_SCALES, GOOD_ALIGNED, GOOD_RATIOS, GOOD_SCALES,
                    GOOD_THREADS, LAYOUTS, ROI_DT, VALID_DT)
from .common import BF16

# Batch sizes of zero-stride views (and of empty gradients): roipool renumbers the
# images the ROIs use, so these must give results, not MemoryError (tests/test_limits.py).
HUGE_N = [2**17 + 3, 2**31, 2**40, 2**50, 2**61 - 1]


def spec_strategy():
    from hypothesis import strategies as st

    def weighted(common, rare, p_rare):
        # sampled_from with a bias: p_rare in units of 1/100
        return st.integers(0, 99).flatmap(
            lambda u: st.sampled_from(rare) if u < p_rare else st.sampled_from(common))

    @st.composite
    def spec(draw):
        # roi_pooling (fwd, bwd) and roi_align (afwd, abwd): an align case is a
        # pooling case of the same direction plus the RoIAlign arguments
        op = draw(st.sampled_from(["fwd", "fwd", "fwd", "bwd", "bwd", "afwd", "afwd", "abwd"]))
        s = {"op": op, "seed": draw(st.integers(0, 2**32 - 1))}
        if op in ("afwd", "abwd"):
            s["ratio"] = draw(weighted(GOOD_RATIOS, BAD_RATIOS, 6))
            s["aligned"] = draw(weighted(GOOD_ALIGNED, BAD_ALIGNED, 4))
            s["acompat"] = draw(weighted(["torchvision", "torchvision", "mxnet", "onnxruntime"],
                                         ["ort", "none"], 2))
            s["mode"] = draw(weighted(["avg", "avg", "max"], ["mean", "none"], 2))
            if s["mode"] == "max" and draw(st.integers(0, 3)):
                s["acompat"] = "onnxruntime"  # mostly the valid pairing
            s["scale"] = draw(weighted(GOOD_SCALES, EDGE_SCALES + BAD_SCALES, 12))
        dts = VALID_DT if BF16 is not None else [d for d in VALID_DT if d != "bfloat16"]
        s["dt"] = draw(weighted(dts, BAD_DT, 6))
        s["rank"] = draw(weighted(["ok"], ["3d", "5d", "2d", "0d", "none", "scalar", "ragged"], 4))
        s["layout"] = draw(st.sampled_from(LAYOUTS))
        s["vals"] = draw(st.sampled_from(["normal", "ties", "special"]))
        s["N"] = draw(st.integers(0, 3))
        s["C"] = draw(weighted([0, 1, 2, 3, 5, 8, 9, 16, 17], [33, 64, 65, 130], 15))
        s["H"] = draw(weighted(list(range(0, 13)), [20, 33, 40], 10))
        s["W"] = draw(weighted(list(range(0, 13)), [20, 33, 40], 10))
        s["R"] = draw(weighted(list(range(0, 9)), [16, 40], 8))
        s["rowkinds"] = draw(st.lists(weighted(
            ["normal", "normal", "halfs", "inverted", "edge", "batch_frac"],
            ["huge", "batch_bad", "coord_bad"], 12), min_size=1, max_size=3))
        s["rdt"] = draw(weighted(ROI_DT, BAD_ROI_DT, 4))
        s["rshape"] = draw(weighted(["ok"], ["4col", "6col", "1d", "3d", "T"], 4))
        s["rlayout"] = draw(st.sampled_from(["c", "c", "f", "slice", "ro", "bcast", "list", "neg",
                                             "unaligned", "oddstride"]))
        s["PH"] = draw(weighted(list(range(1, 7)), [7, 9, 16], 10))
        s["PW"] = draw(weighted(list(range(1, 7)), [7, 9, 16], 10))
        s["threads"] = draw(weighted(GOOD_THREADS, BAD_THREADS, 4))
        s["out"] = draw(weighted(["none", "none", "ok", "ok_cl"],
                                 ["badshape", "baddtype", "ro", "noncontig", "list", "overlap",
                                  "unaligned"], 10))
        huge = draw(weighted([None], ["N", "HW_over", "HW_max", "C", "pooled"], 3))
        if op in ("fwd", "afwd"):
            if op == "fwd":
                s["scale"] = draw(weighted(GOOD_SCALES, EDGE_SCALES + BAD_SCALES, 12))
            s["pooled"] = draw(weighted(["int", "tuple", "tuple", "list", "np", "nparr", "one"],
                                        BAD_POOLED, 5))
            s["compat"] = draw(weighted(["mxnet", "mxnet", "torchvision"],
                                        ["MXNet", "none", "int", "torch"], 2))
            s["ret"] = draw(st.booleans())
            s["argmax"] = draw(weighted(["none", "ok", "ok_cl"],
                                        ["badshape", "baddtype", "ro", "noncontig", "overlap",
                                         "overlap_out", "list", "unaligned"], 8))
            if huge == "pooled":
                # huge pooled sizes: both huge (output never allocatable) or an empty output
                big = draw(st.sampled_from([2**31 - 1, 2**30, 10**9]))
                if draw(st.booleans()):
                    s["PH"], s["PW"] = big, draw(st.sampled_from([big, 2**31 - 1]))
                else:
                    s["PH"], s["PW"] = big, draw(st.integers(1, 4))
                    s["C"] = 0
                s["pooled"] = "tuple"
            elif huge:
                s["huge"] = huge
                # native float32/float64 only: other types are converted (copied) in full,
                # which for a 2**31-element broadcast view is 8 GB of legitimate work
                s["dt"] = draw(st.sampled_from(["float32", "float64"]))
                s["hugeN"] = draw(st.sampled_from(HUGE_N))
                s["layout"] = "c"
                s["rank"] = "ok"
                s["H"], s["W"] = min(s["H"], 4), min(s["W"], 4)
                if huge in ("HW_max", "HW_over"):
                    s["R"] = 0 if draw(st.booleans()) else s["R"]
                    s["C"] = min(s["C"], 1)
                    # small ROIs near the origin: a bin never spans the 2**31-pixel map
                    s["rowkinds"] = [k for k in s["rowkinds"] if k != "huge"] or ["normal"]
                    s["scale"] = draw(st.sampled_from(GOOD_SCALES))
                if huge == "C":
                    s["PH"], s["PW"] = draw(st.sampled_from([(1, 1), (2**31 - 1, 2**31 - 1)]))
        else:
            s["amk"] = draw(weighted(["random", "random", "dup", "int64", "uint8", "ro", "noncontig",
                                      "list", "bigendian", "int16", "unaligned", "oddstride"],
                                     ["oob_hi", "oob_lo", "int_max", "uint64_huge", "bool", "float",
                                      "object", "badshape", "none"], 10))
            s["dsk"] = draw(weighted(["ok", "ok", "ok", "list", "ndarray", "np_int"],
                                     ["wrongC", "neg", "len3", "float", "bool", "none", "str",
                                      "hugeHW", "hugeN", "huge_alloc"], 6))
            if s["dsk"] == "hugeN":
                s["hugeN"] = draw(st.sampled_from(HUGE_N))
                s["C"] = 0 if draw(st.booleans()) else s["C"]
            if s["dsk"] == "huge_alloc":
                s["C"] = draw(st.sampled_from([1, 8]))
                s["R"] = 0
            s["ovl"] = draw(st.sampled_from(["grad", "argmax"]))
            if s["dt"] in BAD_DT and s["amk"] in ("uint8", "int16"):
                s["amk"] = "random"
        return s

    return spec()
