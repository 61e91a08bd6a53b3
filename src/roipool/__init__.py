"""roipool: exact, parallel ROI pooling on CPUs: MXNet's ``roi_pooling`` (max) and
torchvision's ``roi_align``.

>>> import numpy as np, roipool
>>> x = np.arange(48, dtype=np.float32).reshape(1, 1, 8, 6)
>>> roipool.roi_pooling(x, [[0, 0, 0, 4, 4]], (2, 2), 0.7)[0, 0]
array([[ 7.,  9.],
       [19., 21.]], dtype=float32)
"""
import os as _os

from roipool._version import __version__
from roipool._ops import roi_align, roi_align_backward, roi_pooling, roi_pooling_backward
from roipool import _roi_pool
from roipool._roi_pool import openmp_enabled
from roipool._outcache import empty_cache
from roipool._config import get_isa, set_isa, show_config, supported_isas, _configure_at_import

_configure_at_import()
del _configure_at_import

# GNU libgomp's worker pool does not survive fork(): a child's next parallel
# region would wait forever for workers that were not copied. Free the pool
# of the forking thread first; the parent re-creates it on its next call.
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(before=_roi_pool.omp_pause)

__all__ = [
    "__version__",
    "roi_pooling",
    "roi_pooling_backward",
    "roi_align",
    "roi_align_backward",
    "openmp_enabled",
    "show_config",
    "get_isa",
    "set_isa",
    "supported_isas",
    "empty_cache",
]
