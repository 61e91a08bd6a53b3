"""The public modules the API reference covers (docs/conf.py and tests/test_docs.py)."""
import importlib

PUBLIC_MODULES = {
    "roipool": "ROI max pooling on NumPy arrays, and the build's run-time facts.",
    "roipool.torch": "The PyTorch front end (needs torch): torchvision's ``roi_pool`` on "
                     "roipool's kernels.",
    "roipool.onnx": "The ONNX Runtime front end (needs onnx and onnxruntime): "
                    "``InferenceSession`` with ``MaxRoiPool`` computed by roipool.",
}

# what a public name that is not callable means (its value is shown beside it)
DATA_DOCS = {
    "roipool.__version__": "roipool's version (PEP 440; ``.devN`` for a development state).",
}


def public_names(module):
    """The module's __all__: what the reference documents, in that order."""
    return list(importlib.import_module(module).__all__)
