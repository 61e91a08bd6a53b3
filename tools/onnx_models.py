"""ONNX models with MaxRoiPool for the tests of roipool.onnx and for
bench/bench_onnx.py: each builder returns the serialized model (bytes).

Weights come from numpy's default_rng(seed); every model takes ROIs as an
input with a dynamic count ("K"), and most a dynamic batch ("N")."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what onnxruntime 1.x reads
F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), props=None, **meta):
    graph = helper.make_graph(nodes, meta.pop("graph_name", "g"), inputs, outputs,
                              list(inits), doc_string=meta.pop("graph_doc", ""))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], **meta)
    if props:
        helper.set_model_props(m, props)
    m.ir_version = IR_VERSION
    return m.SerializeToString()


def _t(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _pool(x, rois, out, pooled, scale):
    return helper.make_node("MaxRoiPool", [x, rois], [out], pooled_shape=list(pooled),
                            spatial_scale=scale)


def _weights(rng, name, shape):
    return numpy_helper.from_array(
        (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name)


def pool_only(pooled=(7, 7), scale=1 / 16, elem=F):
    """X [N, C, H, W], rois [K, 5] -> MaxRoiPool."""
    return _model([_pool("X", "rois", "Y", pooled, scale)],
                  [_t("X", elem, ["N", "C", "H", "W"]), _t("rois", elem, ["K", 5])],
                  [_t("Y", elem)], producer_name="roipool-tests", model_version=3,
                  doc_string="pool only", graph_name="pool", graph_doc="one node",
                  props={"origin": "tools/onnx_models.py"})


def align_only(pooled=(7, 7), scale=1 / 4, sampling_ratio=2, aligned=False, mode="avg"):
    """X [N, C, H, W], boxes [K, 4], batch [K] (int64) -> RoiAlign (opset 17 has
    opset 16's coordinate_transformation_mode)."""
    node = helper.make_node("RoiAlign", ["X", "boxes", "batch"], ["Y"], mode=mode,
                            output_height=pooled[0], output_width=pooled[1],
                            sampling_ratio=sampling_ratio, spatial_scale=scale,
                            coordinate_transformation_mode="half_pixel" if aligned
                            else "output_half_pixel")
    return _model([node], [_t("X", F, ["N", "C", "H", "W"]), _t("boxes", F, ["K", 4]),
                           _t("batch", TensorProto.INT64, ["K"])], [_t("Y")],
                  graph_name="align")


def align_feed(data, rows):
    """The RoiAlign feed of [K, 5] rows (batch index first)."""
    return {"X": data, "boxes": np.ascontiguousarray(rows[:, 1:]),
            "batch": rows[:, 0].astype(np.int64)}


def head(c_in=16, c=32, pooled=(7, 7), scale=1 / 16, hidden=64, classes=5, seed=0):
    """A Fast R-CNN head: Conv + Relu, MaxRoiPool, Flatten, Gemm + Relu, Gemm;
    outputs the class scores and the feature map."""
    rng = np.random.default_rng(seed)
    ph, pw = pooled
    inits = [_weights(rng, "conv_w", (c, c_in, 3, 3)), _weights(rng, "conv_b", (c,)),
             _weights(rng, "fc1_w", (hidden, c * ph * pw)), _weights(rng, "fc1_b", (hidden,)),
             _weights(rng, "fc2_w", (classes, hidden)), _weights(rng, "fc2_b", (classes,))]
    nodes = [helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1] * 4),
             helper.make_node("Relu", ["conv"], ["feats"]),
             _pool("feats", "rois", "pooled", pooled, scale),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], transB=1),
             helper.make_node("Relu", ["fc1"], ["fc1r"]),
             helper.make_node("Gemm", ["fc1r", "fc2_w", "fc2_b"], ["scores"], transB=1)]
    return _model(nodes, [_t("image", F, ["N", c_in, "H", "W"]), _t("rois", F, ["K", 5])],
                  [_t("scores", F, ["K", classes]), _t("feats", F)], inits)


def two_levels(c=8, pooled=(3, 3), seed=1):
    """Two pools on two feature levels (the second at half resolution), one
    set of ROIs each, concatenated and classified."""
    rng = np.random.default_rng(seed)
    inits = [_weights(rng, "w1", (c, c, 3, 3)), _weights(rng, "w2", (c, c, 3, 3)),
             _weights(rng, "fc", (4, c * pooled[0] * pooled[1]))]
    nodes = [helper.make_node("Conv", ["X", "w1"], ["p1"], pads=[1] * 4),
             helper.make_node("Conv", ["p1", "w2"], ["p2"], pads=[1] * 4, strides=[2, 2]),
             _pool("p1", "rois1", "y1", pooled, 0.25),
             _pool("p2", "rois2", "y2", pooled, 0.125),
             helper.make_node("Concat", ["y1", "y2"], ["y"], axis=0),
             helper.make_node("Flatten", ["y"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc"], ["scores"], transB=1)]
    return _model(nodes, [_t("X", F, ["N", c, "H", "W"]), _t("rois1", F, ["K1", 5]),
                          _t("rois2", F, ["K2", 5])],
                  [_t("scores", F), _t("y1", F)], inits)


def rois_in_graph(scale=0.7):
    """ROIs computed inside the graph: boxes [K, 4] (in units of 1/scale) are
    scaled, shifted by half a unit and given batch index 0 by a Concat."""
    inits = [numpy_helper.from_array(np.array([3.0, 2.5, 3.0, 2.5], np.float32), "mul"),
             numpy_helper.from_array(np.array([0.5, -0.5, 0.5, 0.5], np.float32), "add"),
             numpy_helper.from_array(np.array([0, 1], np.int64), "slice_to")]
    nodes = [helper.make_node("Mul", ["boxes", "mul"], ["b1"]),
             helper.make_node("Add", ["b1", "add"], ["b2"]),
             helper.make_node("Shape", ["boxes"], ["bshape"]),
             helper.make_node("Gather", ["bshape", "slice_to"], ["k_and_4"]),
             helper.make_node("ConstantOfShape", ["k_and_4"], ["zeros"],
                              value=numpy_helper.from_array(np.zeros(1, np.float32))),
             helper.make_node("Slice", ["zeros", "zero1", "one1", "one1"], ["batch"]),
             helper.make_node("Concat", ["batch", "b2"], ["rois"], axis=1),
             helper.make_node("Relu", ["X"], ["xr"]),
             _pool("xr", "rois", "Y", (2, 3), scale)]
    inits += [numpy_helper.from_array(np.array([0], np.int64), "zero1"),
              numpy_helper.from_array(np.array([1], np.int64), "one1")]
    return _model(nodes, [_t("X", F, [1, "C", "H", "W"]), _t("boxes", F, ["K", 4])],
                  [_t("Y", F), _t("rois", F)], inits)


def chained(scale=0.5):
    """A pool whose input is another pool's output (two cuts): the first pools
    the map into 6x6 cells per ROI, the second pools ROIs of those."""
    nodes = [helper.make_node("Relu", ["X"], ["xr"]),
             _pool("xr", "rois", "y1", (6, 6), scale),
             helper.make_node("Exp", ["y1"], ["y1n"]),  # no -0.0: roipool keeps it
             _pool("y1n", "rois2", "y2", (2, 2), 1.0),
             helper.make_node("Abs", ["y2"], ["Y"])]
    return _model(nodes, [_t("X", F, ["N", "C", "H", "W"]), _t("rois", F, ["K", 5]),
                          _t("rois2", F, ["K2", 5])], [_t("Y", F), _t("y1", F)])


def pool_in_if():
    """A MaxRoiPool inside an If body (stays on ONNX Runtime's kernel) and one
    at the top level (roipool's)."""
    then = helper.make_graph([_pool("X", "rois", "t", (2, 2), 0.5)], "then", [],
                             [_t("t", F)])
    other = helper.make_graph([helper.make_node("Identity", ["top"], ["e"])], "else", [],
                              [_t("e", F)])
    nodes = [_pool("X", "rois", "top", (2, 2), 0.5),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then, else_branch=other)]
    return _model(nodes, [_t("X", F, ["N", "C", "H", "W"]), _t("rois", F, ["K", 5]),
                          _t("cond", TensorProto.BOOL, [])], [_t("Y", F), _t("top", F)])


def pool_in_function():
    """A MaxRoiPool inside a model-local function (stays on ONNX Runtime's)."""
    fn = helper.make_function("local", "Pool", ["a", "b"], ["c"],
                              [_pool("a", "b", "c", (2, 2), 0.5)],
                              [helper.make_opsetid("", OPSET)])
    nodes = [helper.make_node("Pool", ["X", "rois"], ["Y"], domain="local")]
    m = helper.make_model(
        helper.make_graph(nodes, "g", [_t("X", F, ["N", "C", "H", "W"]), _t("rois", F, ["K", 5])],
                          [_t("Y", F)]),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)],
        functions=[fn])
    m.ir_version = IR_VERSION
    return m.SerializeToString()


def rois(rng, k, n, h, w, scale, odd=True):
    """k ROIs over n images of an h x w map at `scale`: corners anywhere in
    (and a little beyond) the image, in steps of 0.25 so that some products
    land on halves; some inverted."""
    img_h, img_w = h / scale, w / scale
    r = np.empty((k, 5), np.float32)
    r[:, 0] = rng.integers(0, n, k)
    r[:, 1] = rng.uniform(-0.1 * img_w, img_w, k)
    r[:, 2] = rng.uniform(-0.1 * img_h, img_h, k)
    r[:, 3] = r[:, 1] + rng.uniform(-2, img_w, k)
    r[:, 4] = r[:, 2] + rng.uniform(-2, img_h, k)
    if odd:
        r[:, 1:] = np.round(r[:, 1:] * 4) / 4
    return r


def const_rois(scale=0.5):
    """The ROIs and a bias added to the map as initializers that are also graph
    inputs (overridable initializers): used without a feed, replaced by one.
    The bias is also a graph output."""
    r = numpy_helper.from_array(np.array([[0, 0, 0, 9, 9], [1, 3.5, 2.5, 20, 7],
                                          [0, 12, 11, 2, 1]], np.float32), "rois")
    bias = numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "bias")
    nodes = [helper.make_node("Add", ["X", "bias"], ["xb"]),
             _pool("xb", "rois", "Y", (2, 2), scale)]
    return _model(nodes, [_t("X", F, ["N", "C", "H", "W"]), _t("rois", F, ["K", 5]),
                          _t("bias", F, [1, 1, 1, 1])], [_t("Y", F), _t("bias", F)], [r, bias])
