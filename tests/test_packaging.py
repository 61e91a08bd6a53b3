"""What `pip install roipool` puts on a machine, and what importing it costs.

* ``import roipool`` adds only roipool's own modules, Cython's runtime and
  ``threading`` to what ``import numpy`` loads: a light import by construction
  (its time is a bench figure: ``bench/import_time.py``).
* Importing roipool and running a call loads no framework (torch, ml_dtypes,
  threadpoolctl, MXNet, ONNX Runtime, ...): NumPy is the only dependency.
* The package under test is a built one: the compiled extension, the type
  stubs and the PEP 561 marker sit next to ``roipool/__init__.py``; with
  CI=true it must be the installed copy, not the checkout's src/; when it was
  installed from a wheel, the wheel's file list (RECORD) has the stubs and the
  extension and no Cython/C sources.
* The stubs (``__init__.pyi``, ``torch/__init__.pyi``) declare every public function
  with the runtime's parameter names, kinds and defaults.
"""
import ast
import importlib.metadata
import inspect
import os
import pathlib
import subprocess
import sys

import pytest

import roipool

PKG = pathlib.Path(roipool.__file__).resolve().parent
REPO = pathlib.Path(__file__).resolve().parent.parent
FRAMEWORKS = ("torch", "torchvision", "ml_dtypes", "threadpoolctl", "mxnet", "onnxruntime",
              "onnx", "tensorflow", "jax", "hypothesis", "Cython", "matplotlib", "scipy")


def _run(code, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, check=True)


# What roipool's own modules import beyond numpy, from the standard library.
IMPORT_STDLIB = {"threading"}


def test_import_adds_only_its_own_modules_on_top_of_numpy():
    out = _run("import sys, numpy\n"
               "before = set(sys.modules)\n"
               "import roipool\n"
               "print(' '.join(sorted(set(sys.modules) - before)))\n").stdout.split()
    assert "roipool._roi_pool" in out and "roipool._ops" in out, out
    extra = {m for m in out if m != "roipool" and not m.startswith("roipool.")
             and m != "cython_runtime" and not m.startswith("_cython_")}
    assert extra <= IMPORT_STDLIB, f"import roipool also loads {sorted(extra - IMPORT_STDLIB)}"


def test_import_and_call_load_no_framework():
    out = _run(
        "import io, sys, numpy as np, roipool\n"
        "x = np.ones((1, 2, 8, 8), np.float32)\n"
        "y, a = roipool.roi_pooling(x, [[0, 0, 0, 7, 7]], 2, 1.0, return_argmax=True)\n"
        "roipool.roi_pooling_backward(y, [[0, 0, 0, 7, 7]], a, x.shape)\n"
        "roipool.show_config(file=io.StringIO())\n"
        "print(' '.join(sorted(m for m in sys.modules if '.' not in m)))\n"
    ).stdout.split()
    assert "roipool" in out and "numpy" in out
    loaded = [m for m in FRAMEWORKS if m in out]
    assert loaded == [], f"import roipool loaded {loaded}"


def test_roipool_onnx_is_separate_and_says_what_to_install():
    # `import roipool` never loads its ONNX integration; without onnxruntime
    # (or onnx) the integration's import names the extra to install.
    out = _run("import sys, roipool\n"
               "print('roipool.onnx' in sys.modules)\n"
               "sys.modules['onnxruntime'] = None\n"
               "try:\n    import roipool.onnx\nexcept ImportError as e:\n    print(e)\n").stdout
    first, message = out.split("\n", 1)
    assert first == "False"
    assert "needs the onnx and onnxruntime packages" in message, out
    assert "pip install 'roipool[onnx]'" in message, out


def test_package_is_built_and_complete():
    ext = pathlib.Path(roipool._roi_pool.__file__).resolve()
    assert ext.parent == PKG and ext.suffix in (".so", ".pyd")
    for name in ("py.typed", "__init__.pyi", "torch/__init__.pyi", "_roi_pool.pyi"):
        assert (PKG / name).is_file(), name
    if os.environ.get("CI", "").lower() == "true":
        # CI installs with `pip install .` and runs pytest from the checkout
        assert not PKG.is_relative_to(REPO / "src"), f"testing the source tree {PKG}"


def test_installed_wheel_file_list():
    try:
        dist = importlib.metadata.distribution("roipool")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    files = [str(f) for f in (dist.files or [])] if dist else []
    installed = any(pathlib.Path(dist.locate_file(f)).resolve() == PKG / "__init__.py"
                    for f in files if f.endswith("__init__.py")) if dist else False
    if not installed:
        assert os.environ.get("CI", "").lower() != "true", "CI must test an installed roipool"
        pytest.skip("roipool is imported from a development tree, not an installed wheel")
    names = {f.replace("\\", "/") for f in files}
    for want in ("roipool/py.typed", "roipool/__init__.pyi", "roipool/__main__.py",
                 "roipool/torch/__init__.py", "roipool/torch/__init__.pyi",
                 "roipool/torch/_ops.py", "roipool/torch/_onnx.py", "roipool/torch/_patch.py",
                 "roipool/onnx/__init__.py", "roipool/onnx/_session.py", "roipool/onnx/_plan.py"):
        assert want in names, want
    assert any(n.startswith("roipool/_roi_pool.") and n.endswith((".so", ".pyd")) for n in names)
    assert not [n for n in names if n.endswith((".pyx", ".pxd", ".c", ".h"))]


# ----------------------------------------------------------------------------- stubs


def _stub_functions(path):
    """{name: [ast.FunctionDef, ...]} of the module-level defs and class methods."""
    tree = ast.parse(path.read_text())
    defs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef):
                    defs.setdefault(f"{node.name}.{sub.name}", []).append(sub)
    return defs, tree


def _params(fn):
    """[(name, kind, default or '-')] of a stub def."""
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + a.defaults
    out = [(p.arg, "POSITIONAL_OR_KEYWORD", "-" if d is None else ast.literal_eval(d))
           for p, d in zip(pos, defaults)]
    out += [(p.arg, "KEYWORD_ONLY", "-" if d is None else ast.literal_eval(d))
            for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return out


def _runtime_params(obj):
    return [(p.name, p.kind.name, "-" if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(obj).parameters.values()]


def test_stubs_match_runtime_signatures():
    defs, tree = _stub_functions(PKG / "__init__.pyi")
    stub_all = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and getattr(n.targets[0], "id", "") == "__all__")
    assert stub_all == roipool.__all__
    for name in roipool.__all__:
        if name == "__version__":
            continue
        assert name in defs, f"{name} missing from __init__.pyi"
        want = _runtime_params(getattr(roipool, name))
        overloads = [_params(fn) for fn in defs[name]]
        for got in overloads:
            # names and kinds always; an overload may drop a default
            # (return_argmax: Literal[True] is required), never change one
            assert [p[:2] for p in got] == [p[:2] for p in want], name
            assert all(g[2] in ("-", w[2]) for g, w in zip(got, want)), name
        assert want in overloads, f"{name}: no stub signature equals the runtime one"


def test_torch_stub_matches_runtime():
    pytest.importorskip("torch")
    import roipool.torch as rt

    defs, _ = _stub_functions(PKG / "torch" / "__init__.pyi")
    assert _params(defs["roi_pool"][0]) == _runtime_params(rt.roi_pool)
    init = _params(defs["RoIPool.__init__"][0])
    assert init[0][0] == "self" and init[1:] == _runtime_params(rt.RoIPool)
    fwd = _params(defs["RoIPool.forward"][0])
    assert fwd == _runtime_params(rt.RoIPool.forward)
