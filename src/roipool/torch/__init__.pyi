# Type stubs for roipool.torch (needs the optional extra "torch").
from typing import Any, Callable, Literal, Sequence

from torch import Tensor, nn

__all__ = ["roi_pool", "RoIPool", "roi_align", "RoIAlign", "patch_torchvision", "unpatch_torchvision",
           "onnx_translation_table"]

_Compat = Literal["mxnet", "torchvision"]
_Boxes = Tensor | Sequence[Tensor]  # Tensor[K, 5] or one Tensor[L, 4] per image

class BoxesShapeError(ValueError, AssertionError): ...
class BoxesTypeError(TypeError, AssertionError): ...
class BoxesDimError(ValueError, IndexError): ...
class InputShapeError(ValueError, RuntimeError): ...
class InputTypeError(TypeError, RuntimeError): ...

def roi_pool(
    input: Tensor,
    boxes: _Boxes,
    output_size: int | tuple[int, int] | Sequence[int],
    spatial_scale: float = 1.0,
    compat: _Compat = "torchvision",
    num_threads: int | None = None,
) -> Tensor: ...

class RoIPool(nn.Module):
    output_size: int | tuple[int, int] | Sequence[int]
    spatial_scale: float
    compat: _Compat
    num_threads: int | None
    def __init__(
        self,
        output_size: int | tuple[int, int] | Sequence[int],
        spatial_scale: float,
        *,
        compat: _Compat = "torchvision",
        num_threads: int | None = None,
    ) -> None: ...
    def forward(self, input: Tensor, rois: _Boxes) -> Tensor: ...

_AlignCompat = Literal["torchvision", "mxnet", "onnxruntime"]

def roi_align(
    input: Tensor,
    boxes: _Boxes,
    output_size: int | tuple[int, int] | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    compat: _AlignCompat = "torchvision",
    num_threads: int | None = None,
) -> Tensor: ...

class RoIAlign(nn.Module):
    output_size: int | tuple[int, int] | Sequence[int]
    spatial_scale: float
    sampling_ratio: int
    aligned: bool
    compat: _AlignCompat
    num_threads: int | None
    def __init__(
        self,
        output_size: int | tuple[int, int] | Sequence[int],
        spatial_scale: float,
        sampling_ratio: int = -1,
        aligned: bool = False,
        *,
        compat: _AlignCompat = "torchvision",
        num_threads: int | None = None,
    ) -> None: ...
    def forward(self, input: Tensor, rois: _Boxes) -> Tensor: ...

def patch_torchvision() -> None: ...
def unpatch_torchvision() -> None: ...
def onnx_translation_table() -> dict[Any, Callable[..., Any]]: ...
