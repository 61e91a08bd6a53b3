"""Sphinx configuration of roipool's documentation site.

    pip install '.[docs]'
    python -m sphinx -W -b html docs docs/_build/html

The Markdown pages are read by myst-parser. The API reference is generated
at each build from the ``__all__`` of every public module (PUBLIC_MODULES):
one page per module with an autosummary table, one autodoc page per public
name, under its public path (``roipool.roi_pooling``). A public name added
to an ``__all__`` gets its page without editing anything here, and
tests/test_docs.py fails when its docstring lacks a numpydoc section.
"""
import importlib
import inspect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _api import DATA_DOCS, PUBLIC_MODULES, public_names  # noqa: E402

import roipool  # noqa: E402

project = "roipool"
author = "the roipool developers"
copyright = "2026, the roipool developers"
release = roipool.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
autosummary_generate = False  # our pages are written by write_api_pages below
autodoc_typehints = "none"    # the numpydoc sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

try:
    import pydata_sphinx_theme  # noqa: F401
    html_theme = "pydata_sphinx_theme"
except ImportError:
    html_theme = "alabaster"
html_title = f"roipool {release}"


def _page(module, name):
    obj = getattr(importlib.import_module(module), name)
    full = f"{module}.{name}"
    if inspect.isclass(obj):
        body = f".. autoclass:: {full}\n   :members:\n"
    else:
        body = f".. autofunction:: {full}\n"
    return f"{full}\n{'=' * len(full)}\n\n.. currentmodule:: {module}\n\n{body}"


def _is_data(module, name):
    return not callable(getattr(importlib.import_module(module), name))


def write_api_pages(app):
    """docs/api/<module>.rst and docs/api/<module>.<name>.rst from each __all__."""
    out = os.path.join(app.srcdir, "api")
    os.makedirs(out, exist_ok=True)
    pages = {}
    for module, summary in PUBLIC_MODULES.items():
        names = [n for n in public_names(module) if not _is_data(module, n)]
        lines = [f"``{module}``", "=" * (len(module) + 4), "", summary, "",
                 f".. currentmodule:: {module}", "", ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in names]
        for n in public_names(module):  # data (a version string): its value, here
            if _is_data(module, n):
                value = getattr(importlib.import_module(module), n)
                lines += ["", f".. py:data:: {n}", f"   :value: {value!r}", "",
                          f"   {DATA_DOCS.get(f'{module}.{n}', 'A constant.')}"]
        lines += ["", ".. toctree::", "   :hidden:", ""]
        lines += [f"   {module}.{n}" for n in names]
        pages[f"{module}.rst"] = "\n".join(lines) + "\n"
        for n in names:
            pages[f"{module}.{n}.rst"] = _page(module, n)
    for fname, text in pages.items():
        path = os.path.join(out, fname)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:  # unchanged pages keep their time stamps: no needless rebuild
            with open(path, "w") as f:
                f.write(text)
    for fname in os.listdir(out):  # a name that left __all__ loses its page
        if fname.endswith(".rst") and fname not in pages:
            os.remove(os.path.join(out, fname))


def setup(app):
    # before autosummary reads the sources
    app.connect("builder-inited", write_api_pages, priority=400)
