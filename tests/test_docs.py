"""The documentation is tested like the code:

* every example in the package's docstrings runs and shows its output
  (doctest over every module of roipool, roipool.torch and roipool.onnx);
* every Python code block of README.md and docs/*.md runs; a block written as
  a ``>>>`` session must show the output it gets;
* every public name (each public module's ``__all__``) has the numpydoc
  sections the API reference needs, and the site builds with warnings as
  errors with a page for each (CI's docs phase: ROIPOOL_REQUIRE_DOCS=1);
* the generated benchmark tables agree with the committed JSON.

Examples that need torch, torchvision or ONNX Runtime skip without them, except
where ROIPOOL_REQUIRE_TORCH=1 / ROIPOOL_REQUIRE_PEERS=1 (CI's peer phase). The
README/docs tests need the checkout's files: a copy of tests/ alone (the
packaging phase) skips them, and the docs phase runs them.
"""
import doctest
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, import_peer, load_script

import roipool

DOCS = os.path.join(ROOT, "docs")
MARKDOWN = ["README.md"] + sorted(
    os.path.join("docs", f) for f in (os.listdir(DOCS) if os.path.isdir(DOCS) else ())
    if f.endswith(".md"))
# the peers an example needs, by what it imports (module -> (peer, env var))
PEERS = {
    # roipool.torch's examples compare with torchvision or patch it
    "roipool.torch": [("torch", "ROIPOOL_REQUIRE_TORCH"), ("torchvision", "ROIPOOL_REQUIRE_TORCH")],
    "torchvision": [("torchvision", "ROIPOOL_REQUIRE_TORCH")],
    "roipool.onnx": [("onnx", "ROIPOOL_REQUIRE_PEERS"), ("onnxruntime", "ROIPOOL_REQUIRE_PEERS")],
    "torch": [("torch", "ROIPOOL_REQUIRE_TORCH")],
}


def need_checkout(path):
    if not os.path.exists(path):
        pytest.skip(f"{os.path.relpath(path, ROOT)} is not beside these tests "
                    "(a copy of tests/ alone); CI's docs phase runs this")


def need_peers_of(text):
    for module, peers in PEERS.items():
        if re.search(rf"\b(import|from) {re.escape(module)}\b", text) or (
                module == "torchvision" and "patch_torchvision" in text):
            for name, env in peers:
                import_peer(name, env)


def public_modules():
    need_checkout(os.path.join(DOCS, "_api.py"))
    return load_script("docs/_api.py", "roipool_docs_api").PUBLIC_MODULES


# ----------------------------------------------------------------------------- docstrings

def _submodules(package, skip=()):
    """The package and its modules, recursively, except the subpackages in
    skip (never imported: their peers may be missing)."""
    mod = importlib.import_module(package)
    yield mod
    for info in pkgutil.iter_modules(mod.__path__, package + "."):
        if info.name in skip:
            continue
        if info.ispkg:
            yield from _submodules(info.name, skip)
        else:
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("package", ["roipool", "roipool.torch", "roipool.onnx"])
def test_docstring_examples_run(package):
    """Every docstring example of the package's modules (public and private),
    as doctest runs it: the output shown is the output got."""
    need_peers_of(f"import {package}")
    if package == "roipool.torch":
        import_peer("onnxscript")  # onnx_translation_table's example
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    # roipool.torch and roipool.onnx: their own parameter, with their peers
    skip = ("roipool.torch", "roipool.onnx") if package == "roipool" else ()
    for mod in _submodules(package, skip):
        for test in finder.find(mod, mod.__name__, globs={"np": np}):
            ran += len(test.examples)
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples of {package} failed"
    assert ran > 0


# numpydoc section titles as they appear in a docstring
def _sections(doc):
    return set(re.findall(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", doc or "", re.M))


def _public_objects():
    for module in public_modules():
        need_peers_of(f"import {module}")
        mod = importlib.import_module(module)
        for name in mod.__all__:
            yield f"{module}.{name}", getattr(mod, name)


def test_every_public_name_has_the_reference_sections():
    """Parameters and Raises (when it takes arguments), Returns (functions) and Examples:
    what each page of the API reference shows. Checked for every name of every
    public module's __all__, so a name added later is covered."""
    missing = []
    checked = 0
    for path, obj in _public_objects():
        if not callable(obj):
            continue  # data (__version__): autodata documents its value
        checked += 1
        sections = _sections(inspect.getdoc(obj))
        want = {"Examples"}
        target = obj.__init__ if inspect.isclass(obj) else obj
        try:
            params = [p for p in inspect.signature(target).parameters if p != "self"]
        except (TypeError, ValueError):
            params = ["?"]
        if params:  # a function without arguments has nothing to refuse
            want |= {"Parameters", "Raises"}
        if not inspect.isclass(obj):
            want.add("Returns")
        if want - sections:
            missing.append(f"{path}: no {', '.join(sorted(want - sections))}")
        raises = (inspect.getdoc(obj) or "").split("Raises\n------", 1)[-1]
        if "Raises" in sections and "semantics" not in raises and "Bad input" not in raises:
            missing.append(f"{path}: Raises does not point at the contract's bad-input tables")
    assert not missing, "\n".join(missing)
    assert checked >= 9


# ----------------------------------------------------------------------------- README, docs/

def _code_blocks(relpath):
    """(line, text) of each ```python block of a Markdown file."""
    lines = open(os.path.join(ROOT, relpath), encoding="utf-8").read().split("\n")
    blocks, start = [], None
    for i, line in enumerate(lines):
        if start is None and re.match(r"^```(python|py|pycon)\s*$", line):
            start = i + 1
        elif start is not None and line.startswith("```"):
            blocks.append((start + 1, "\n".join(lines[start:i]) + "\n"))
            start = None
    return blocks


def _markdown_cases():
    cases = []
    for relpath in MARKDOWN:
        if os.path.exists(os.path.join(ROOT, relpath)):
            cases += [pytest.param(relpath, line, text, id=f"{relpath}:{line}")
                      for line, text in _code_blocks(relpath)]
    return cases or [pytest.param("README.md", 0, "", id="README.md")]


@pytest.mark.parametrize("relpath, line, text", _markdown_cases())
def test_markdown_code_block_runs(relpath, line, text, tmp_path, monkeypatch):
    """A ``>>>`` block must show what it gets; any other block must run."""
    need_checkout(os.path.join(ROOT, relpath))
    need_peers_of(text)
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    name = f"{relpath}:{line}"
    if ">>> " in text:
        test = doctest.DocTestParser().get_doctest(text, {}, name, relpath, line)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0, f"{name}: the shown output is not what the block gets"
        assert test.examples
    else:
        exec(compile(text, name, "exec"), {"__name__": "__doc_example__"})


def test_markdown_files_hold_examples():
    """The extraction sees the blocks (a change of fence style would hide them)."""
    need_checkout(os.path.join(ROOT, "README.md"))
    counts = {p: len(_code_blocks(p)) for p in MARKDOWN}
    assert counts["README.md"] >= 3
    assert counts[os.path.join("docs", "pytorch.md")] >= 2
    assert counts[os.path.join("docs", "onnxruntime.md")] >= 1


# ----------------------------------------------------------------------------- tables

def _tables():
    """tools/doc_tables.py, where the README and the committed results are here."""
    need_checkout(os.path.join(ROOT, "README.md"))
    need_checkout(os.path.join(ROOT, "bench", "results", "latest.json"))
    return load_script("tools/doc_tables.py", "roipool_doc_tables")


def test_generated_tables_match_their_json():
    tables = _tables()
    assert len(tables.tables()) >= 3
    assert tables.stale_tables() == []


def test_table_check_notices_a_changed_number():
    """The check compares numbers, not only markers: one hand-edited cell fails it."""
    tables = _tables()
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert tables.stale_in("README.md", text) == []
    changed = re.sub(r"\*\*(\d)", lambda d: "**" + str((int(d.group(1)) + 1) % 10), text, count=1)
    assert changed != text
    assert tables.stale_in("README.md", changed) == [
        ("README.md", "headline", "bench/results/latest.json")]


def test_tables_name_their_cpu():
    tables = _tables()
    for name, kind, src in tables.tables():
        assert "CPU: " in tables.render(kind, src).split("\n")[0], (name, kind)


# ----------------------------------------------------------------------------- the site

def test_site_builds_with_warnings_as_errors_and_a_page_per_public_name(tmp_path):
    """python -m sphinx -W -b html docs <out> from the sources (CI's docs phase
    sets ROIPOOL_REQUIRE_DOCS=1; elsewhere ROIPOOL_DOCS_BUILD=1 runs it)."""
    if os.environ.get("ROIPOOL_REQUIRE_DOCS") != "1" and \
            os.environ.get("ROIPOOL_DOCS_BUILD") != "1":
        pytest.skip("builds the site (~1 min): CI's docs phase runs it (ROIPOOL_REQUIRE_DOCS=1)")
    need_checkout(os.path.join(DOCS, "conf.py"))
    for name in ("sphinx", "myst_parser", "numpydoc"):
        import_peer(name, "ROIPOOL_REQUIRE_DOCS")
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E",
                           "-b", "html", DOCS, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, obj in _public_objects():
        if callable(obj):
            assert (out / "api" / f"{path}.html").is_file(), f"no page for {path}"
        else:  # data: described on its module's page
            module = path.rpartition(".")[0]
            assert f'id="{path}"' in (out / "api" / f"{module}.html").read_text(), path
    for page in ("semantics", "pytorch", "onnxruntime", "threads-and-services", "platforms",
                 "performance", "api"):
        assert (out / f"{page}.html").is_file(), page
    # public paths only: no page or anchor under a private module
    html = (out / "api" / "roipool.roi_pooling.html").read_text()
    assert 'id="roipool.roi_pooling"' in html and "roipool._ops" not in html
