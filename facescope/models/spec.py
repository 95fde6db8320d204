"""Declarative settings that travel with a model or its weights: input normalisation, resizing
policy, post-processing thresholds and named inference presets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True)
class InputSpec:
    """How pixels are turned into the network input: ``(pixel - mean) / std`` in ``color`` order."""

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    color: Literal["rgb", "bgr"] = "rgb"
    size_divisor: int = 32  # network input sides must be multiples of this


@dataclass(frozen=True)
class ResizeSpec:
    """How an image is brought to the network input size.

    * ``"letterbox"``: scale to fit inside ``size = (width, height)`` keeping the aspect ratio,
      paste at the top-left of a canvas filled with ``pad_value`` (pixel value before normalisation).
      ``rounding="floor"`` and ``scale_mode="single"`` reproduce insightface (``int()`` sizes, one
      scale ``new_h / h`` for both axes); ``"round"`` + ``"per_axis"`` reproduce mmdet's keep-ratio
      ``Resize`` (``int(x * s + 0.5)``, separate x and y factors).
    * ``"original"``: keep the original size and pad bottom/right up to a multiple of
      ``size_divisor`` (1 = no padding).
    """

    mode: Literal["letterbox", "original"] = "letterbox"
    size: tuple[int, int] = (640, 640)
    rounding: Literal["floor", "round"] = "floor"
    scale_mode: Literal["single", "per_axis"] = "single"
    pad_value: float = 0.0
    size_divisor: int = 32


@dataclass(frozen=True)
class PostprocessSettings:
    """Score filtering and NMS.

    Args:
        score_thresh: keep predictions with ``score >= score_thresh`` (``>`` if ``strict_score``).
        nms_thresh: IoU above which a lower-scoring box is suppressed.
        nms_pixel_offset: 1.0 = "+1" area convention of the official numpy NMS; 0.0 = continuous.
        pre_nms_top_k: keep only this many highest scores before NMS (None = all).
        max_detections: keep only this many after NMS (None = all).
    """

    score_thresh: float = 0.5
    nms_thresh: float = 0.4
    nms_pixel_offset: float = 1.0
    strict_score: bool = False
    pre_nms_top_k: int | None = None
    max_detections: int | None = None


@dataclass(frozen=True)
class InferencePreset:
    """A named, complete inference recipe (resize + post-processing)."""

    description: str
    resize: ResizeSpec = field(default_factory=ResizeSpec)
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)

    def with_overrides(
        self,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        input_size: int | tuple[int, int] | str | None = None,
    ) -> InferencePreset:
        """Copy with user overrides; ``input_size`` is an int (square), ``(w, h)`` or ``"original"``."""
        post = self.postprocess
        if score_thresh is not None:
            post = replace(post, score_thresh=float(score_thresh))
        if nms_thresh is not None:
            post = replace(post, nms_thresh=float(nms_thresh))
        resize = self.resize
        if input_size is not None:
            resize = _resize_for(resize, input_size)
        return replace(self, resize=resize, postprocess=post)


def _resize_for(resize: ResizeSpec, input_size: int | tuple[int, int] | str) -> ResizeSpec:
    if isinstance(input_size, str):
        if input_size != "original":
            raise ValueError(f"input_size must be an int, (width, height) or 'original', got {input_size!r}")
        return replace(resize, mode="original")
    size = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be positive (width, height), got {input_size!r}")
    return replace(resize, mode="letterbox", size=size)
