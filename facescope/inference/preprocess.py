"""Resizing and normalisation of BGR uint8 images into network input arrays, and the inverse map
of boxes and landmarks back to the original pixels. numpy and OpenCV only (torch callers wrap the
array with :func:`to_tensor`)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from facescope.models.spec import InputSpec, ResizeSpec
from facescope.structures import Detections

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class ResizedImage:
    """An image resized for the network; padding is added when the batch tensor is built.

    Attributes:
        image: resized ``h x w x 3`` uint8 BGR content, placed at the top-left of the input.
        input_hw: ``(height, width)`` of the network input for this image (``>= image`` size).
        scale_xy: factors mapping original pixels to input pixels.
        original_hw: ``(height, width)`` of the original image.
    """

    image: np.ndarray
    input_hw: tuple[int, int]
    scale_xy: tuple[float, float]
    original_hw: tuple[int, int]


def _round_up(value: int, divisor: int) -> int:
    return int(math.ceil(value / max(divisor, 1)) * max(divisor, 1))


@dataclass(frozen=True)
class ResizePlan:
    """The sizes a resize policy gives an image, decided from its size alone (before any pixel moves).

    Attributes:
        content_hw: ``(height, width)`` of the resized content, placed at the top-left of the input.
        input_hw: ``(height, width)`` of the network input (``>= content_hw``).
        scale_xy: factors mapping original pixels to input pixels.
        original_hw: ``(height, width)`` of the original image.
    """

    content_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale_xy: tuple[float, float]
    original_hw: tuple[int, int]


def letterbox_plan(image_hw: tuple[int, int], resize: ResizeSpec, size_divisor: int) -> ResizePlan:
    """Fit ``resize.size`` keeping the aspect ratio; input sides rounded up to ``size_divisor``.

    Reproduces insightface (``rounding="floor"``, ``scale_mode="single"``) and mmdet's keep-ratio
    resize (``"round"``, ``"per_axis"``).
    """
    height, width = image_hw
    target_w, target_h = resize.size
    if resize.rounding == "floor":
        if height / width > target_h / target_w:
            new_h, new_w = target_h, int(target_h / (height / width))
        else:
            new_w, new_h = target_w, int(target_w * (height / width))
    else:
        factor = min(target_w / width, target_h / height)
        new_w, new_h = int(width * factor + 0.5), int(height * factor + 0.5)
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    input_hw = (_round_up(target_h, size_divisor), _round_up(target_w, size_divisor))
    if resize.scale_mode == "single":
        scale_xy = (new_h / height, new_h / height)
    else:
        scale_xy = (new_w / width, new_h / height)
    return ResizePlan((new_h, new_w), input_hw, scale_xy, (height, width))


def original_plan(image_hw: tuple[int, int], resize: ResizeSpec, model: str | None = None) -> ResizePlan:
    """Keep the original size; the input is padded bottom/right to a multiple of ``size_divisor``.
    An input over the memory budget is refused here, before anything is allocated: with the
    ``bytes_per_pixel`` of the registered ``model``, or the generic estimate when it is not given."""
    from facescope.inference.validate import check_input_memory

    height, width = image_hw
    input_hw = (_round_up(height, resize.size_divisor), _round_up(width, resize.size_divisor))
    check_input_memory(input_hw, 1, model, what="original-size input")
    return ResizePlan((height, width), input_hw, (1.0, 1.0), (height, width))


def plan_resize(
    image_hw: tuple[int, int], resize: ResizeSpec, input_spec: InputSpec, model: str | None = None
) -> ResizePlan:
    """The resize policy of a preset, applied to an image of ``image_hw`` (``model``: the registry
    name whose memory estimate checks an original-size input)."""
    if resize.mode == "letterbox":
        return letterbox_plan(image_hw, resize, input_spec.size_divisor)
    if resize.mode == "long":
        return long_side_plan(image_hw, resize.size[0], input_spec.size_divisor)
    return original_plan(image_hw, resize, model)


def apply_resize(image: np.ndarray, plan: ResizePlan) -> ResizedImage:
    """Resize ``image`` (bilinear, as every supported source) to the plan's content size."""
    content = image
    if image.shape[:2] != plan.content_hw:
        content = cv2.resize(image, (plan.content_hw[1], plan.content_hw[0]), interpolation=cv2.INTER_LINEAR)
    return ResizedImage(content, plan.input_hw, plan.scale_xy, plan.original_hw)


def letterbox(image: np.ndarray, resize: ResizeSpec, size_divisor: int) -> ResizedImage:
    """Resize ``image`` to fit ``resize.size`` keeping the aspect ratio (:func:`letterbox_plan`)."""
    return apply_resize(image, letterbox_plan(image.shape[:2], resize, size_divisor))


def keep_original(image: np.ndarray, resize: ResizeSpec) -> ResizedImage:
    """Keep the original size; the input is padded bottom/right to a multiple of ``size_divisor``."""
    return apply_resize(image, original_plan(image.shape[:2], resize))


def long_side_plan(image_hw: tuple[int, int], long_side: int, size_divisor: int) -> ResizePlan:
    """Scale the longer side to ``long_side``, keeping the aspect ratio; the input is the resized image
    padded bottom/right only up to a multiple of ``size_divisor``.

    Sides are ``int(side * long_side / longer + 0.5)`` (at least 1) and the boxes map back with
    separate x and y factors, so the inverse map is exact. E.g. 1024x768 at ``long:640`` ->
    640x480 content in a 640x480 input (a multiple of 32 already); 1000x750 at ``long:500`` -> 500x375
    content in a 512x384 input.
    """
    height, width = image_hw
    factor = long_side / max(height, width)
    new_w, new_h = max(int(width * factor + 0.5), 1), max(int(height * factor + 0.5), 1)
    input_hw = (_round_up(new_h, size_divisor), _round_up(new_w, size_divisor))
    return ResizePlan((new_h, new_w), input_hw, (new_w / width, new_h / height), (height, width))


def resize_long_side(image: np.ndarray, long_side: int, size_divisor: int) -> ResizedImage:
    """Resize ``image`` by :func:`long_side_plan` (no copy when it is already that size)."""
    return apply_resize(image, long_side_plan(image.shape[:2], long_side, size_divisor))


def resize_image(image: np.ndarray, resize: ResizeSpec, input_spec: InputSpec) -> ResizedImage:
    """Apply the resize policy of a preset."""
    return apply_resize(image, plan_resize(image.shape[:2], resize, input_spec))


def to_tensor(images: list[ResizedImage], input_spec: InputSpec, pad_value: float = 0.0) -> torch.Tensor:
    """:func:`to_blob` as a ``Tensor[B, 3, H, W]`` (sharing its memory)."""
    import torch

    return torch.from_numpy(to_blob(images, input_spec, pad_value))


def to_blob(images: list[ResizedImage], input_spec: InputSpec, pad_value: float = 0.0) -> np.ndarray:
    """Build the normalised network input ``ndarray[B, 3, H, W]`` float32.

    Each image sits at the top-left; the rest (letterbox border, size-divisor padding, and
    padding to the largest image of the batch) holds ``pad_value`` (a pixel value, normalised
    like the pixels). Values are ``(float32(pixel) - mean) * float32(1 / std)`` in the model's
    colour order, computed by OpenCV's ``blobFromImage`` (colour swap, mean subtraction, scaling
    and the HWC -> CHW transpose in one pass).
    """
    height = max(r.input_hw[0] for r in images)
    width = max(r.input_hw[1] for r in images)
    mean = np.asarray(input_spec.mean, dtype=np.float32)
    inv_std = (1.0 / np.asarray(input_spec.std, dtype=np.float64)).astype(np.float32)
    uniform_scale = bool(np.all(inv_std == inv_std[0]))
    if len(images) == 1 and uniform_scale and float(pad_value).is_integer() and 0 <= pad_value <= 255:
        return _single_blob(images[0], (height, width), mean, float(inv_std[0]), input_spec, int(pad_value))
    batch = np.empty((len(images), 3, height, width), dtype=np.float32)
    # the normalised pad value, per channel: (3,) -> (1, 3, 1, 1)
    batch[...] = ((np.float32(pad_value) - mean) * inv_std).reshape(1, 3, 1, 1)
    for i, item in enumerate(images):
        h, w = item.image.shape[:2]
        blob = cv2.dnn.blobFromImage(
            item.image,
            scalefactor=float(inv_std[0]) if uniform_scale else 1.0,
            mean=tuple(float(m) for m in mean),
            swapRB=input_spec.color == "rgb",
            crop=False,
        )  # (1, 3, h, w) float32 in the model's colour order
        if not uniform_scale:
            blob *= inv_std.reshape(1, 3, 1, 1)
        batch[i, :, :h, :w] = blob[0]
    return batch


class InputBuffers:
    """Single images normalised straight into a reused ``float32[1, 3, H, W]`` buffer per input size.

    What :func:`to_blob` does for one image, without a padded uint8 canvas and a fresh output array
    per frame: the padding (letterbox border, stride padding) is written once when a size is first
    seen and again only where a previous, larger image left pixels; the image region is normalised
    plane by plane into the buffer in the same float32 arithmetic, ``(float32(pixel) - mean) *
    float32(1 / std)``, so the values equal :func:`to_blob`'s bit for bit. Buffers are kept per thread
    (a detector shared by threads never hands one thread's buffer to another) for the last
    ``cache_size`` input sizes.

    The returned array is overwritten by the next call for that size in the same thread: run the
    network on it before preparing the next image.
    """

    def __init__(self, input_spec: InputSpec, pad_value: float = 0.0, cache_size: int = 4) -> None:
        self.mean = np.asarray(input_spec.mean, dtype=np.float32)
        self.inv_std = (1.0 / np.asarray(input_spec.std, dtype=np.float64)).astype(np.float32)
        self.pad = (np.float32(pad_value) - self.mean) * self.inv_std  # (3,) normalised pad per channel
        # model channel c reads BGR plane source[c]
        self.source = (2, 1, 0) if input_spec.color == "rgb" else (0, 1, 2)
        self.cache_size = cache_size
        self._local = threading.local()

    def __call__(self, item: ResizedImage) -> np.ndarray:
        """``item`` -> its normalised ``float32[1, 3, *item.input_hw]`` input (a reused buffer)."""
        buffers: OrderedDict[tuple[int, int], list[Any]] = getattr(self._local, "buffers", None) or OrderedDict()
        self._local.buffers = buffers
        entry = buffers.pop(item.input_hw, None)
        if entry is None:
            blob = np.empty((1, 3, *item.input_hw), dtype=np.float32)
            blob[0] = self.pad.reshape(3, 1, 1)
            entry = [blob, (0, 0)]
        buffers[item.input_hw] = entry
        while len(buffers) > self.cache_size:
            buffers.popitem(last=False)
        blob, (last_h, last_w) = entry
        h, w = item.image.shape[:2]
        self._clear_leftovers(blob[0], (last_h, last_w), (h, w))
        planes = cv2.split(item.image)
        for channel, source in enumerate(self.source):
            region = blob[0, channel, :h, :w]
            np.subtract(planes[source], self.mean[channel], out=region, dtype=np.float32)
            region *= self.inv_std[channel]
        entry[1] = (h, w)
        return blob

    def _clear_leftovers(self, blob: np.ndarray, last_hw: tuple[int, int], hw: tuple[int, int]) -> None:
        """Reset to padding what the previous image covered and this one does not."""
        (last_h, last_w), (h, w) = last_hw, hw
        pad = self.pad.reshape(3, 1, 1)
        if last_h > h:
            blob[:, h:last_h, :last_w] = pad
        if last_w > w:
            blob[:, : min(h, last_h), w:last_w] = pad


def _single_blob(
    item: ResizedImage, input_hw: tuple[int, int], mean: np.ndarray, scale: float, input_spec: InputSpec, pad: int
) -> np.ndarray:
    """One image: pad the uint8 image first, then a single ``blobFromImage`` pass (no float copy)."""
    h, w = item.image.shape[:2]
    canvas = item.image
    if (h, w) != input_hw:
        canvas = np.full((*input_hw, 3), pad, dtype=np.uint8)
        canvas[:h, :w] = item.image
    return cv2.dnn.blobFromImage(
        canvas, scalefactor=scale, mean=tuple(float(m) for m in mean), swapRB=input_spec.color == "rgb", crop=False
    )


def unscale(
    boxes: np.ndarray, landmarks: np.ndarray | None, scale_xy: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Input pixels -> original pixels: ``boxes [K, 4]`` and ``landmarks [K, 5, 2]`` (or None)
    divided by the float32 ``scale_xy`` of a resize."""
    scale_x, scale_y = scale_xy
    scale = np.asarray([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
    return boxes / scale, None if landmarks is None else landmarks / scale[:2]


def to_original(detections: Detections, resized: ResizedImage) -> Detections:
    """Map detections from canvas pixels back to the original image's pixels."""
    boxes, landmarks = unscale(detections.boxes, detections.landmarks, resized.scale_xy)
    return Detections(boxes, detections.scores, landmarks)
