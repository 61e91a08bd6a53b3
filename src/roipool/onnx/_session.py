"""roipool.onnx.InferenceSession: the parts of a cut model in ONNX Runtime
sessions, the pools between them in roipool."""
import os
import threading

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import roipool
from roipool import _validate
from roipool.onnx import _plan

CPU = "CPUExecutionProvider"
SPINNING = "session.intra_op.allow_spinning"
DENORMAL_AS_ZERO = "session.set_denormal_as_zero"
# Measured (bench/bench_onnx.py, bench/README.md): ONNX Runtime's workers spinning
# after a part steal the cores roipool's OpenMP threads need for the pool.
DEFAULT_SPINNING = "0"
NEG_ZERO_BITS = np.iinfo(np.int32).min  # -0.0f as an int32
NO_VERSION = 2 ** 63 - 1  # what ONNX Runtime reports for a model without model_version
_ORT_ERROR = "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : "


class NodeArg:
    """A graph input or output no ONNX Runtime session of the parts describes
    (one a pool makes, or one only pools read): name, type and shape written
    as onnxruntime.NodeArg writes them.

    ``InferenceSession.get_inputs()`` and ``get_outputs()`` return these (or
    ONNX Runtime's own NodeArg objects); you do not make them.

    Parameters
    ----------
    name : str
    type : str
        E.g. ``"tensor(float)"``.
    shape : list of int, str or None
        Fixed sizes, symbolic names, or None for an unknown dimension.

    Raises
    ------
    Nothing
        It only holds the three values. The session's errors are
        :class:`InferenceSession`'s (``docs/semantics.md``, "Bad input").

    Examples
    --------
    >>> from roipool.onnx import NodeArg
    >>> NodeArg("rois", "tensor(float)", ["R", 5])
    NodeArg(name='rois', type='tensor(float)', shape=['R', 5])

    :class:`InferenceSession`'s example shows ``get_inputs()``.
    """

    def __init__(self, name, type, shape):
        self.name, self.type, self.shape = name, type, shape

    @classmethod
    def declared(cls, info):
        t = info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else
                 d.dim_param if d.HasField("dim_param") else None
                 for d in t.shape.dim] if t.HasField("shape") else []
        return cls(info.name, f"tensor({onnx.TensorProto.DataType.Name(t.elem_type).lower()})",
                   shape)

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


class ModelMetadata:
    """The model's metadata, as onnxruntime.ModelMetadata reports it.

    ``InferenceSession.get_modelmeta()`` returns it; its attributes are
    ``producer_name``, ``graph_name``, ``domain``, ``description``,
    ``graph_description``, ``version`` and ``custom_metadata_map``.

    Parameters
    ----------
    model : onnx.ModelProto
        The model read.

    Raises
    ------
    Nothing
        It only copies the model's fields. The session's errors are
        :class:`InferenceSession`'s (``docs/semantics.md``, "Bad input").

    Examples
    --------
    >>> from onnx import helper
    >>> from roipool.onnx import ModelMetadata
    >>> model = helper.make_model(helper.make_graph([], "pool", [], []), producer_name="me")
    >>> meta = ModelMetadata(model)
    >>> meta.graph_name, meta.producer_name
    ('pool', 'me')
    """

    def __init__(self, model):
        self.producer_name = model.producer_name
        self.graph_name = model.graph.name
        self.domain = model.domain
        self.description = model.doc_string
        self.graph_description = model.graph.doc_string
        self.version = model.model_version if model.HasField("model_version") else NO_VERSION
        self.custom_metadata_map = {p.key: p.value for p in model.metadata_props}


def _config(options, key):
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:  # not set
        return None


def _load(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return onnx.load_model_from_string(bytes(path_or_bytes))
    return onnx.load(os.fspath(path_or_bytes))


def _cpu_only(providers):
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in (providers or [CPU])]
    return names == [CPU]


class InferenceSession:
    """A drop-in for ``onnxruntime.InferenceSession`` that computes every
    top-level float32 ``MaxRoiPool`` node and float32 or float64 ``RoiAlign``
    node with roipool.

    ``RoiAlign`` (opset 10 and 16; mode avg or max) is
    :func:`roipool.roi_align` with ``compat="onnxruntime"``, whose rule is
    ONNX Runtime's (the scale a float32; ``half_pixel`` is aligned, opset 10
    and ``output_half_pixel`` are not); calls with shapes or types ONNX
    Runtime refuses, and a node with aligned adaptive sampling given a box
    flipped on an axis (ONNX Runtime fails there), go to ONNX Runtime's kernel.

    The constructor takes onnxruntime's arguments; ``num_threads`` (keyword
    only) is roipool's thread count for the pools, by default OpenMP's,
    bounded by ``sess_options.intra_op_num_threads`` when that is set. The
    outputs are those of ``onnxruntime.InferenceSession`` bit for bit. Its
    methods are ONNX Runtime's: ``run``, ``get_inputs``, ``get_outputs``,
    ``get_overridable_initializers``, ``get_modelmeta``, ``get_providers``,
    ``get_session_options``; ``uses_roipool`` says whether any pool runs on
    roipool (False: the model is one plain ONNX Runtime session). Safe to
    call from several Python threads at once.

    Parameters
    ----------
    path_or_bytes : str, os.PathLike or bytes
        The model, as for onnxruntime.
    sess_options : onnxruntime.SessionOptions, optional
        Used for every ONNX Runtime session made. Unless it sets
        ``session.intra_op.allow_spinning``, that is set to "0" on it (ONNX
        Runtime's spinning workers would hold the cores roipool needs). With
        ``session.set_denormal_as_zero`` = "1" the model runs as one plain
        session.
    providers, provider_options : list, optional
        As for onnxruntime; any providers other than
        ``["CPUExecutionProvider"]`` make the model one plain session.
    num_threads : int, optional, keyword only
        roipool's threads for the pools (None or >= 1).
    **kwargs
        Passed to every ONNX Runtime session made.

    Raises
    ------
    ValueError
        A bad num_threads (named). At ``run``: a bad ROI that ONNX Runtime's
        kernel would read as undefined values (a batch index outside the
        batch, a NaN or a coordinate whose scaled value does not fit a C int)
        raises roipool's ValueError naming ``rois`` and its row
        (``docs/semantics.md``, "Bad input"); every other bad input raises
        what ONNX Runtime raises, with its message.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import TensorProto, helper
    >>> import roipool.onnx as ort               # instead of: import onnxruntime as ort
    >>> pool = helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=[2, 2],
    ...                         spatial_scale=1.0)
    >>> graph = helper.make_graph(
    ...     [pool], "pool",
    ...     [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 8, 6]),
    ...      helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["R", 5])],
    ...     [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["R", 1, 2, 2])])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
    ...                           ir_version=8)
    >>> sess = ort.InferenceSession(model.SerializeToString(),
    ...                             providers=["CPUExecutionProvider"])
    >>> sess.uses_roipool
    True
    >>> [(a.name, a.shape) for a in sess.get_inputs()]
    [('X', [1, 1, 8, 6]), ('rois', ['R', 5])]
    >>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
    >>> sess.run(None, {"X": x, "rois": np.array([[0, 0, 0, 4, 4]], np.float32)})[0][0, 0]
    array([[14., 16.],
           [26., 28.]], dtype=float32)
    """

    def __init__(self, path_or_bytes, sess_options=None, providers=None, provider_options=None,
                 *, num_threads=None, **kwargs):
        if num_threads is not None:
            _validate.check_num_threads(num_threads)
        self._num_threads = num_threads
        self._lock = threading.Lock()
        self._schedules = {}
        try:
            model = _load(path_or_bytes)
        except Exception:
            model = None  # ONNX Runtime gives its own error, or reads what onnx cannot
        options = sess_options if sess_options is not None else ort.SessionOptions()
        plan = None
        if (model is not None and _cpu_only(providers)
                and _config(options, DENORMAL_AS_ZERO) != "1"):
            plan = _plan.plan(model)
        if plan is None:
            self._plain = ort.InferenceSession(path_or_bytes, sess_options, providers,
                                               provider_options, **kwargs)
            return
        self._plain = None
        if _config(options, SPINNING) is None:
            options.add_session_config_entry(SPINNING, DEFAULT_SPINNING)
        self._options = options
        self._intra = options.intra_op_num_threads
        self._model_meta = ModelMetadata(model)
        self._parts = [(p, ort.InferenceSession(p.model_bytes, options, providers,
                                                provider_options, **kwargs))
                       for p in plan.parts]
        for part in plan.parts:
            part.model_bytes = None  # ONNX Runtime holds its own copy
        self._pools = plan.pools
        self._steps = []  # ("part", Part, session) and ("pool", Pool), in run order
        for k in range(max(p.cut for p in plan.pools) + 2):
            self._steps += [("part", part, sess) for part, sess in self._parts if part.index == k]
            self._steps += [("pool", p) for p in plan.pools if p.cut == k]
        fallback_options = ort.SessionOptions()
        fallback_options.intra_op_num_threads = 1  # the kernel is serial
        self._fallback = {p.out: ort.InferenceSession(_plan.pool_model(model, p),
                                                      fallback_options, [CPU])
                          for p in self._pools}
        self._consts = plan.consts
        self._describe(model, plan)

    def _describe(self, model, plan):
        g = model.graph
        inits = {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
        known = {}
        for part, sess in self._parts:
            for a in sess.get_inputs() + sess.get_outputs():
                known.setdefault(a.name, a)
        for v in g.input:
            known.setdefault(v.name, NodeArg.declared(v))
        for p in plan.pools:  # ONNX's shape rule: [rois' rows, X's channels, PH, PW]
            dims = [_dim(known.get(p.rois), 0), _dim(known.get(p.x), 1), *p.pooled]
            known.setdefault(p.out, NodeArg(p.out, _type_name(p.elem_type), dims))
        self._inputs = [known[v.name] for v in g.input if v.name not in inits]
        self._outputs = [known.get(v.name) or NodeArg.declared(v) for v in g.output]
        self._overridable = [known[v.name] for v in g.input if v.name in inits]
        self._required = [a.name for a in self._inputs if not a.type.startswith("optional")]
        self._input_names = {v.name for v in g.input}
        self._output_names = [v.name for v in g.output]
        self._declared = {v.name: v for v in g.input}
        self._made = {o for part, _ in self._parts for o in part.outputs}
        self._made.update(p.out for p in self._pools)
        # A pool reading a graph input directly: the checks ONNX Runtime's
        # session would make on it, since no session sees it.
        read = {v for part, _ in self._parts for v in part.inputs}
        self._pool_fed = {v for p in self._pools for v in p.inputs
                          if v in self._declared and v not in read}

    # -- onnxruntime.InferenceSession's interface

    def get_inputs(self):
        return self._plain.get_inputs() if self._plain is not None else list(self._inputs)

    def get_outputs(self):
        return self._plain.get_outputs() if self._plain is not None else list(self._outputs)

    def get_overridable_initializers(self):
        if self._plain is not None:
            return self._plain.get_overridable_initializers()
        return list(self._overridable)

    def get_modelmeta(self):
        return self._plain.get_modelmeta() if self._plain is not None else self._model_meta

    def get_providers(self):
        return self._plain.get_providers() if self._plain is not None else [CPU]

    def get_session_options(self):
        return self._plain.get_session_options() if self._plain is not None else self._options

    @property
    def uses_roipool(self):
        """Whether any pool node runs on roipool (False: one plain session)."""
        return self._plain is None

    def run(self, output_names, input_feed, run_options=None):
        if self._plain is not None:
            return self._plain.run(output_names, input_feed, run_options)
        names = tuple(output_names) if output_names else tuple(self._output_names)
        missing = [n for n in self._required if n not in input_feed]
        if missing:
            raise ValueError(f"Required inputs ({missing}) are missing from input feed "
                             f"({list(input_feed)}).")
        for n in input_feed:
            if n not in self._input_names:
                raise InvalidArgument(f"{_ORT_ERROR}Invalid input name: {n}")
        env = dict(self._consts)
        env.update(input_feed)
        for n in self._pool_fed:
            if n in input_feed:
                env[n] = self._check_input(n, input_feed[n])
        for step in self._schedule(names):
            if step[0] == "part":
                _, sess, feed, fetch = step
                # an overridable initializer not fed keeps its value
                env.update(zip(fetch, sess.run(fetch, {v: env[v] for v in feed if v in env},
                                               run_options)))
            else:
                p = step[1]
                env[p.out] = self._pool(p, *(env[v] for v in p.inputs))
        return [env[n] for n in names]

    # -- the pieces

    def _schedule(self, names):
        """The steps that make `names`, in run order (part k, then the pools of
        cut k), each part with what to feed and what to fetch; cached per
        tuple of names."""
        steps = self._schedules.get(names)
        if steps is not None:
            return steps
        for n in names:
            if n not in self._made and n not in self._input_names:
                raise InvalidArgument(f"{_ORT_ERROR}Invalid output name:{n}")
        need, steps = set(names), []
        for step in reversed(self._steps):
            if step[0] == "pool":
                if step[1].out in need:
                    steps.append(step)
                    need.update(step[1].inputs)
                continue
            part, sess = step[1], step[2]
            fetch = [o for o in part.outputs if o in need]
            if fetch:
                steps.append(("part", sess, part.inputs, fetch))
                need.update(part.inputs)
        steps.reverse()
        with self._lock:
            self._schedules[names] = steps
        return steps

    def _check_input(self, name, value):
        arr = np.asarray(value)
        t = self._declared[name].type.tensor_type
        if arr.dtype != onnx.helper.tensor_dtype_to_np_dtype(t.elem_type):
            raise InvalidArgument(f"{_ORT_ERROR}Unexpected input data type. Actual: "
                                  f"(tensor({arr.dtype})) , expected: "
                                  f"({_type_name(t.elem_type)})")
        if t.HasField("shape"):
            dims = t.shape.dim
            if arr.ndim != len(dims):
                raise InvalidArgument(f"{_ORT_ERROR}Invalid rank for input: {name} Got: "
                                      f"{arr.ndim} Expected: {len(dims)} Please fix either the "
                                      f"inputs/outputs or the model.")
            bad = [(i, arr.shape[i], d.dim_value) for i, d in enumerate(dims)
                   if d.HasField("dim_value") and d.dim_value != arr.shape[i]]
            if bad:
                lines = "".join(f"\n index: {i} Got: {got} Expected: {want}"
                                for i, got, want in bad)
                raise InvalidArgument(f"{_ORT_ERROR}Got invalid dimensions for input: {name} "
                                      f"for the following indices{lines}\n Please fix either "
                                      f"the inputs/outputs or the model.")
        return arr

    def _threads(self):
        if self._num_threads is not None:
            return self._num_threads
        if self._intra > 0:
            return _validate.check_num_threads(None, limit=self._intra)
        return None

    def _pool(self, p, x, rois, batch=None):
        if p.op == _plan.ALIGN_OP:
            if not _align_takes(p, x, rois, batch):
                return self._fallback[p.out].run(None, {p.x: x, p.rois: rois,
                                                        p.inputs[2]: batch})[0]
            rows = np.concatenate([batch.astype(x.dtype)[:, None], rois], axis=1)
            return roipool.roi_align(x, rows, p.pooled, p.scale, p.sampling_ratio, p.aligned,
                                     mode=p.mode, compat="onnxruntime",
                                     num_threads=self._threads())
        if x.size and _ort_answers(x):
            return self._fallback[p.out].run(None, {p.x: x, p.rois: rois})[0]
        return roipool.roi_pooling(x, rois, p.pooled, p.scale, num_threads=self._threads())


def _align_takes(p, x, rois, batch):
    """Whether roipool computes this RoiAlign call as ONNX Runtime does. Shapes
    or types ONNX Runtime refuses go to its kernel for its error; so does an
    aligned box flipped on one axis with adaptive sampling, on which ONNX
    Runtime fails (roipool's rule gives 0) and, to keep plain ONNX Runtime's
    behaviour, every flipped box of such a node."""
    if not (x.ndim == 4 and rois.ndim == 2 and rois.shape[1] == 4 and batch.ndim == 1
            and batch.shape[0] == rois.shape[0] and rois.dtype == x.dtype
            and batch.dtype == np.int64):
        return False
    if p.aligned and p.sampling_ratio == 0 and rois.shape[0]:
        flipped = (rois[:, 2] < rois[:, 0]) | (rois[:, 3] < rois[:, 1])
        return not flipped.any()
    return True


def _type_name(elem_type):
    return f"tensor({onnx.TensorProto.DataType.Name(elem_type).lower()})"


def _ort_answers(x):
    """Whether ONNX Runtime's kernel must answer: its running maximum is
    std::max(value, max), so a NaN is taken and then replaced by the next
    value, and of equal values the last wins, where roipool's rule takes the
    first and never a NaN. Equal floats have equal bits except 0.0 and -0.0,
    so without NaN and -0.0 in the map the two answers are the same bits."""
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    return bool(np.isnan(x.max())) or int(x.view(np.int32).min()) == NEG_ZERO_BITS


def _dim(arg, i):
    return arg.shape[i] if arg is not None and len(arg.shape) > i else None
