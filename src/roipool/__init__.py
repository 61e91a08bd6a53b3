"""roipool: exact, parallel ROI max pooling (MXNet ``roi_pooling``) on CPUs.

>>> import numpy as np, roipool
>>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
>>> roipool.roi_pooling(x, [[0, 0, 0, 4, 4]], (2, 2), 0.7)[0, 0]
array([[ 7.,  9.],
       [19., 21.]], dtype=float32)
"""
from roipool._version import __version__
from roipool._ops import roi_pooling, roi_pooling_backward
from roipool._roi_pool import openmp_enabled
from roipool._config import get_isa, set_isa, show_config, supported_isas, _select_at_import

_select_at_import()
del _select_at_import

__all__ = [
    "__version__",
    "roi_pooling",
    "roi_pooling_backward",
    "openmp_enabled",
    "show_config",
    "get_isa",
    "set_isa",
    "supported_isas",
]
