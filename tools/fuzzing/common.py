"""What the model, the case builder and the checks share: dtype tests and the
marker for a case this harness does not generate."""
import warnings

import numpy as np


def _bf16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


BF16 = _bf16()


class SkipCase(Exception):
    """A drawn case the harness does not run (environment-dependent or unrepresentable)."""


def float_type(dt):
    """(native compute-result dtype T, reduced?) for a float dtype roipool accepts, else None."""
    dt = np.dtype(dt)
    if BF16 is not None and dt == BF16:
        return BF16, True
    if dt.kind == "f" and dt.itemsize in (2, 4, 8):
        nat = dt.newbyteorder("=")
        return nat, dt.itemsize == 2
    return None


def uint_view(a):
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_real_scalar(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def as_array(x):
    if isinstance(x, np.ndarray):
        return x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(x)
    except Exception:
        return None
