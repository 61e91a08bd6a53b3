"""Where a model is cut: the MaxRoiPool and RoiAlign nodes roipool computes,
and the parts of the graph between them that ONNX Runtime runs.

A pool's *cut* is the number of computed pools on the longest path before it,
so independent pools (one per feature level) share a cut and a pool fed by
another pool gets the next one. Part k runs before the pools of cut k and
after those of cut k-1. A node goes into the latest part its consumers allow
(as late as possible): a producer and its consumer are split only when the
producer also feeds a pool, so ONNX Runtime's fusions inside a part see what
they would see in the whole graph.
"""
import math

import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

POOL_OP = "MaxRoiPool"
ALIGN_OP = "RoiAlign"
ARITY = {POOL_OP: 2, ALIGN_OP: 3}  # X, rois (, batch_indices)
DEFAULT_DOMAINS = ("", "ai.onnx")
DEFAULT_SCALE = 1.0  # ONNX's default spatial_scale
# RoiAlign's coordinate_transformation_mode came in opset 16, defaulting to
# half_pixel; before, the rule was output_half_pixel's (not aligned)
ALIGN_MODES = {"half_pixel": True, "output_half_pixel": False}
ALIGN_MODE_OPSET = 16


class Pool:
    """One MaxRoiPool or RoiAlign node computed by roipool."""

    def __init__(self, node, attrs, elem_type, cut):
        self.node = node
        self.op = node.op_type
        self.inputs = list(node.input)
        self.x, self.rois = node.input[:2]
        self.out = node.output[0]
        self.pooled = attrs["pooled"]
        self.scale = attrs["scale"]
        self.sampling_ratio = attrs.get("sampling_ratio")
        self.aligned = attrs.get("aligned")
        self.mode = attrs.get("mode")
        self.elem_type = elem_type  # of X, rois and the output
        self.cut = cut


class Part:
    """The nodes ONNX Runtime runs between two cuts, as a model of their own."""

    def __init__(self, index, model_bytes, inputs, outputs):
        self.index = index
        self.model_bytes = model_bytes
        self.inputs = inputs  # names fed to the part
        self.outputs = outputs  # names the part can return


class Plan:
    def __init__(self, parts, pools, consts):
        self.parts = parts  # list of Part, in run order (empty parts left out)
        self.pools = pools  # list of Pool, in graph order
        self.consts = consts  # initializer name -> ndarray (those pools read)


def _implicit_inputs(graph):
    """Names a subgraph reads from the scopes around it."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    used = []
    for node in graph.node:
        for name in list(node.input) + _subgraph_reads(node):
            if name and name not in defined and name not in used:
                used.append(name)
        defined.update(node.output)
    return used


def _subgraph_reads(node):
    names = []
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            names += _implicit_inputs(g)
    return names


def node_inputs(node):
    """Every value a node reads: its inputs and what its subgraphs take from outside."""
    seen = []
    for name in list(node.input) + _subgraph_reads(node):
        if name and name not in seen:
            seen.append(name)
    return seen


def _pool_attrs(node, opset):
    """The parameters of a MaxRoiPool node roipool can compute, else None."""
    attrs = {a.name: a for a in node.attribute}
    if set(attrs) - {"pooled_shape", "spatial_scale"} or "pooled_shape" not in attrs:
        return None
    shape = list(attrs["pooled_shape"].ints)
    scale = attrs["spatial_scale"].f if "spatial_scale" in attrs else DEFAULT_SCALE
    if len(shape) != 2 or min(shape) < 1 or not (math.isfinite(scale) and scale > 0):
        return None  # ONNX Runtime refuses the model (or must answer itself)
    return {"pooled": (shape[0], shape[1]), "scale": scale}


def _align_attrs(node, opset):
    """The parameters of a RoiAlign node roipool can compute, else None."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    known = {"mode", "output_height", "output_width", "sampling_ratio", "spatial_scale"}
    if opset >= ALIGN_MODE_OPSET:
        known.add("coordinate_transformation_mode")
    if set(attrs) - known:
        return None
    mode = attrs.get("mode", b"avg").decode()
    transform = attrs.get("coordinate_transformation_mode",
                          b"half_pixel" if opset >= ALIGN_MODE_OPSET
                          else b"output_half_pixel").decode()
    ph, pw = attrs.get("output_height", 1), attrs.get("output_width", 1)
    sr, scale = attrs.get("sampling_ratio", 0), attrs.get("spatial_scale", DEFAULT_SCALE)
    if (mode not in ("avg", "max") or transform not in ALIGN_MODES or min(ph, pw) < 1
            or sr < 0 or not (math.isfinite(scale) and scale > 0)):
        return None  # ONNX Runtime refuses the model (or must answer itself)
    return {"pooled": (ph, pw), "scale": scale, "sampling_ratio": sr,
            "aligned": ALIGN_MODES[transform], "mode": mode}


_ATTRS = {POOL_OP: _pool_attrs, ALIGN_OP: _align_attrs}
# the element types each computed op takes: (X and rois, batch_indices)
_TYPES = {POOL_OP: ((TensorProto.FLOAT,), None),
          ALIGN_OP: ((TensorProto.FLOAT, TensorProto.DOUBLE), TensorProto.INT64)}


def _computed(n, opset, values, sparse):
    """(attributes, element type) when roipool computes node n, else None."""
    if (n.op_type not in ARITY or n.domain not in DEFAULT_DOMAINS
            or len(n.input) != ARITY[n.op_type] or len(n.output) != 1
            or not all(n.input) or not n.output[0] or any(v in sparse for v in n.input)):
        return None
    attrs = _ATTRS[n.op_type](n, opset)
    floats, index = _TYPES[n.op_type]
    elem = _elem_type(values.get(n.input[0]))
    if (attrs is None or elem not in floats or _elem_type(values.get(n.input[1])) != elem
            or (index is not None and _elem_type(values.get(n.input[2])) != index)):
        return None
    return attrs, elem


def _opset(model):
    return max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS),
               default=1)


def _elem_type(info):
    t = info.type if info is not None else None
    if t is None or not t.HasField("tensor_type") or not t.tensor_type.elem_type:
        return None
    return t.tensor_type.elem_type


def _values(model):
    """name -> ValueInfoProto with the best type known (shape inference merged
    with the declared inputs, outputs and initializers)."""
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is an aid; without it every cut is refused below
        inferred = model
    values = {}
    g = inferred.graph
    for t in model.graph.initializer:
        values[t.name] = helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    for info in list(g.value_info) + list(g.output) + list(g.input):
        if _elem_type(info) is not None:
            values[info.name] = info
    return values


def _topo_order(nodes, available):
    """Nodes in an order where each comes after what it reads (ONNX requires
    graph order to be one; ONNX Runtime sorts anyway, so do not rely on it)."""
    producer = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer[o] = i
    order, state = [], [0] * len(nodes)  # 0 new, 1 visiting, 2 done
    for start in range(len(nodes)):
        stack = [(start, False)]
        while stack:
            i, expanded = stack.pop()
            if expanded:
                state[i] = 2
                order.append(i)
                continue
            if state[i]:
                if state[i] == 1:
                    return None  # a cycle: ONNX Runtime will say what is wrong
                continue
            state[i] = 1
            stack.append((i, True))
            for name in node_inputs(nodes[i]):
                j = producer.get(name)
                if j is not None and name not in available and state[j] != 2:
                    if state[j] == 1:
                        return None
                    stack.append((j, False))
    return order


def plan(model):
    """The Plan of a ModelProto, or None when the model should run as one plain
    ONNX Runtime session (no pool roipool may compute, or a cut it cannot make)."""
    g = model.graph
    values = _values(model)
    sparse = {t.values.name for t in g.sparse_initializer}
    inits = {t.name for t in g.initializer} | sparse
    graph_inputs = {v.name for v in g.input}
    graph_outputs = [v.name for v in g.output]
    nodes = list(g.node)
    order = _topo_order(nodes, graph_inputs | inits)
    if order is None:
        return None
    ins = [node_inputs(n) for n in nodes]

    opset = _opset(model)
    pools, depth, asap = {}, {}, {}
    for i in order:
        n = nodes[i]
        d = max((depth.get(v, 0) for v in ins[i]), default=0)
        computed = _computed(n, opset, values, sparse)
        if computed is not None:
            pools[i] = Pool(n, computed[0], computed[1], d)
            depth[n.output[0]] = d + 1
        else:
            asap[i] = d
            for o in n.output:
                depth[o] = d
    if not pools:
        return None
    last = max(p.cut for p in pools.values()) + 1

    consumers = {}
    for i in order:
        for v in ins[i]:
            consumers.setdefault(v, []).append(i)
    where = {}  # node index -> part
    for i in reversed(order):
        if i in pools:
            continue
        k = last
        for o in nodes[i].output:
            for c in consumers.get(o, ()):
                k = min(k, pools[c].cut if c in pools else where[c])
        where[i] = k
        assert k >= asap[i]

    parts = []
    for k in range(last + 1):
        members = [i for i in order if where.get(i) == k]
        if not members:
            continue
        made = {o for i in members for o in nodes[i].output if o}
        reads = []
        for i in members:
            for v in ins[i]:
                if v not in made and v not in reads:
                    reads.append(v)
        later = set(graph_outputs)
        for i in order:
            if (i in pools and pools[i].cut >= k) or where.get(i, -1) > k:
                later.update(ins[i])
        outs = [o for i in members for o in nodes[i].output if o in later]
        part = _part_model(model, k, [nodes[i] for i in members], reads, outs, values, inits)
        if part is None:
            return None
        parts.append(part)

    consts = {}  # initializers read outside any part: by pools, or as graph outputs
    for v in [v for p in pools.values() for v in p.node.input] + graph_outputs:
        if v in inits and v not in sparse and v not in consts:
            consts[v] = _initializer_array(g, v)
    return Plan(parts, [pools[i] for i in order if i in pools], consts)


def _initializer_array(g, name):
    for t in g.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    raise KeyError(name)


def _part_model(model, k, members, reads, outs, values, inits):
    g = model.graph
    declared_in = {v.name: v for v in g.input}
    declared_out = {v.name: v for v in g.output}
    inputs, initializers, sparse = [], [], []
    init_by_name = {t.name: t for t in g.initializer}
    sparse_by_name = {t.values.name: t for t in g.sparse_initializer}
    for v in reads:
        if v in init_by_name:
            initializers.append(init_by_name[v])
        elif v in sparse_by_name:
            sparse.append(sparse_by_name[v])
        if v in declared_in:
            inputs.append(declared_in[v])
        elif v not in inits:
            if v not in values:
                return None  # a tensor crossing a cut with no known type
            inputs.append(values[v])
    outputs = []
    for v in outs:
        info = declared_out.get(v, values.get(v))
        if info is None or _elem_type(values.get(v, info)) is None:
            return None
        outputs.append(info)
    names = {o for n in members for o in n.output} - {v.name for v in outputs}
    graph = helper.make_graph(members, f"{g.name}_part{k}", inputs, outputs, initializers,
                              doc_string=g.doc_string,
                              value_info=[v for v in g.value_info if v.name in names],
                              sparse_initializer=sparse)
    part = onnx.ModelProto()
    part.CopyFrom(model)
    part.graph.CopyFrom(graph)
    try:
        data = part.SerializeToString()
    except ValueError:  # over protobuf's 2 GB: the whole model goes to ONNX Runtime
        return None
    return Part(k, data, [v.name for v in inputs], [v.name for v in outputs])


def pool_model(model, pool):
    """A model of the one pool node, for the calls ONNX Runtime answers
    itself (see _session)."""
    types = [pool.elem_type, pool.elem_type, TensorProto.INT64][:len(pool.inputs)]
    ins = [helper.make_tensor_value_info(v, t, None) for v, t in zip(pool.inputs, types)]
    y = helper.make_tensor_value_info(pool.out, pool.elem_type, None)
    graph = helper.make_graph([pool.node], pool.op.lower(), ins, [y])
    opsets = [o for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    m = helper.make_model(graph, opset_imports=opsets)
    m.ir_version = model.ir_version
    return m.SerializeToString()
