# Type stubs for roipool's public API (PEP 561: see py.typed).
from typing import Any, Literal, Protocol, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str
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

_Isa = Literal["baseline", "avx2", "avx512"]
_Compat = Literal["mxnet", "torchvision"]
_AlignCompat = Literal["torchvision", "onnxruntime", "mxnet"]
# an int k means (k, k)
_PooledSize = int | np.integer[Any] | Sequence[int | np.integer[Any]]
# a 0-d array is accepted too
_Scale = float | np.floating[Any] | np.integer[Any] | NDArray[np.floating[Any] | np.integer[Any]]

class _SupportsWrite(Protocol):
    def write(self, s: str, /) -> object: ...

@overload
def roi_pooling(
    data: ArrayLike,
    rois: ArrayLike,
    pooled_size: _PooledSize,
    spatial_scale: _Scale,
    out: NDArray[Any] | None = None,
    *,
    argmax: NDArray[np.int32] | None = None,
    return_argmax: Literal[False] = False,
    num_threads: int | None = None,
    compat: _Compat = "mxnet",
) -> NDArray[Any]: ...
@overload
def roi_pooling(
    data: ArrayLike,
    rois: ArrayLike,
    pooled_size: _PooledSize,
    spatial_scale: _Scale,
    out: NDArray[Any] | None = None,
    *,
    argmax: NDArray[np.int32] | None = None,
    return_argmax: Literal[True],
    num_threads: int | None = None,
    compat: _Compat = "mxnet",
) -> tuple[NDArray[Any], NDArray[np.int32]]: ...
@overload
def roi_pooling(
    data: ArrayLike,
    rois: ArrayLike,
    pooled_size: _PooledSize,
    spatial_scale: _Scale,
    out: NDArray[Any] | None = None,
    *,
    argmax: NDArray[np.int32] | None = None,
    return_argmax: bool = False,
    num_threads: int | None = None,
    compat: _Compat = "mxnet",
) -> NDArray[Any] | tuple[NDArray[Any], NDArray[np.int32]]: ...
def roi_pooling_backward(
    grad_out: ArrayLike,
    rois: ArrayLike,
    argmax: ArrayLike,
    data_shape: Sequence[int | np.integer[Any]],
    out: NDArray[Any] | None = None,
    *,
    num_threads: int | None = None,
) -> NDArray[Any]: ...
def roi_align(
    data: ArrayLike,
    rois: ArrayLike,
    pooled_size: _PooledSize,
    spatial_scale: _Scale,
    sampling_ratio: int = -1,
    aligned: bool = False,
    out: NDArray[Any] | None = None,
    *,
    mode: Literal["avg", "max"] = "avg",
    compat: _AlignCompat = "torchvision",
    num_threads: int | None = None,
) -> NDArray[Any]: ...
def roi_align_backward(
    grad_out: ArrayLike,
    rois: ArrayLike,
    data_shape: Sequence[int | np.integer[Any]],
    spatial_scale: _Scale,
    sampling_ratio: int = -1,
    aligned: bool = False,
    out: NDArray[Any] | None = None,
    *,
    compat: _AlignCompat = "torchvision",
    num_threads: int | None = None,
) -> NDArray[Any]: ...
def openmp_enabled() -> bool: ...
def show_config(file: _SupportsWrite | None = None) -> None: ...
def get_isa() -> _Isa: ...
def set_isa(name: _Isa) -> _Isa: ...
def supported_isas() -> list[_Isa]: ...
def empty_cache() -> None: ...
