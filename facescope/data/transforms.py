"""Box- and landmark-aware training augmentation (SCRFD's mmdet pipeline, re-implemented).

Order as in the official configs: :class:`RandomSquareCrop` -> :class:`Resize` ->
:class:`RandomFlip` -> :class:`PhotoMetricDistortion`; normalisation happens when the batch tensor is
built. Every transform takes a :class:`Sample` and a ``numpy.random.Generator`` and returns a new
sample; randomness comes only from that generator, so an augmented sample is a pure function of
``(seed, epoch, index)`` and training resumes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from facescope.structures import mirror_faces, swap_landmark_sides


@dataclass
class Sample:
    """An image (float32 BGR ``H x W x 3``, pixel values) and its faces in the image's pixels."""

    image: np.ndarray
    boxes: np.ndarray  # [M, 4] x1, y1, x2, y2
    landmarks: np.ndarray  # [M, 5, 2]
    landmark_valid: np.ndarray  # [M, 5] bool

    def select(self, mask: np.ndarray) -> Sample:
        return Sample(self.image, self.boxes[mask], self.landmarks[mask], self.landmark_valid[mask])


class RandomSquareCrop:
    """SCRFD's square crop; "sample redistribution" is a crop-scale set reaching above 1.

    A scale ``s`` is drawn from ``scales`` and the crop side is ``int(s * short_side)``; its offset is
    drawn so the crop lies inside the image when smaller, or covers it when larger (the area outside
    the image is filled with ``pad_value``). A crop is accepted when at least one face centre lies
    strictly inside it; faces whose centre lies outside are dropped, the rest are optionally clipped
    to the crop (boxes and landmarks, ``clip_border``). After 250 rejected offsets a new scale is
    drawn (scale sets that never exceed 1 grow the previous scale by 1.2 instead, as the official
    code); after ``max_scale_draws`` the image is used whole.

    Args:
        scales: SR set ``(0.3, 0.45, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)`` or the baseline
            ``(0.3, 0.45, 0.6, 0.8, 1.0)``.
        clip_border: clip kept boxes and landmarks to the crop.
        pad_value: fill value outside the image (128 in the official code).
    """

    def __init__(
        self,
        scales: Sequence[float],
        clip_border: bool = True,
        pad_value: float = 128.0,
        tries_per_scale: int = 250,
        max_scale_draws: int = 50,
    ) -> None:
        self.scales = tuple(float(s) for s in scales)
        self.clip_border = clip_border
        self.pad_value = pad_value
        self.tries_per_scale = tries_per_scale
        self.max_scale_draws = max_scale_draws

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        centers = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
        scale = float(rng.choice(self.scales))
        for draw in range(self.max_scale_draws):
            if draw > 0:
                scale = float(rng.choice(self.scales)) if max(self.scales) > 1.0 else scale * 1.2
            side = int(scale * min(height, width))
            for _ in range(self.tries_per_scale):
                left, top = _offset(width, side, rng), _offset(height, side, rng)
                inside = (
                    (centers[:, 0] > left) & (centers[:, 1] > top)
                    & (centers[:, 0] < left + side) & (centers[:, 1] < top + side)
                )  # fmt: skip
                if inside.any():
                    return self._crop(sample.select(inside), left, top, side)
        return sample

    def _crop(self, sample: Sample, left: int, top: int, side: int) -> Sample:
        boxes = sample.boxes.copy()
        landmarks = sample.landmarks.copy()
        if self.clip_border:
            boxes[:, :2] = np.maximum(boxes[:, :2], [left, top])
            boxes[:, 2:] = np.minimum(boxes[:, 2:], [left + side, top + side])
            landmarks = np.clip(landmarks, [left, top], [left + side, top + side])
        boxes -= np.array([left, top, left, top], np.float32)
        landmarks -= np.array([left, top], np.float32)
        image = _paste(sample.image, left, top, side, self.pad_value)
        return Sample(image, boxes, landmarks, sample.landmark_valid)


def _offset(size: int, side: int, rng: np.random.Generator) -> int:
    """Crop start along one axis: inside the image if the crop is smaller, covering it otherwise."""
    if size == side:
        return 0
    if size > side:
        return int(rng.integers(0, size - side))
    return int(rng.integers(size - side, 0))


def _paste(image: np.ndarray, left: int, top: int, side: int, pad_value: float) -> np.ndarray:
    """The ``side x side`` window at ``(left, top)`` of ``image``, padded with ``pad_value``."""
    height, width = image.shape[:2]
    canvas = np.full((side, side, 3), pad_value, dtype=image.dtype)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + side, width), min(top + side, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = image[src_y0:src_y1, src_x0:src_x1]
    return canvas


class Resize:
    """Resize to ``size x size`` (the crop is square, so isotropic); boxes and landmarks follow and are
    clipped to the image, as mmdet's ``Resize`` with its default ``bbox_clip_border=True``."""

    def __init__(self, size: int = 640) -> None:
        self.size = size

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        image = cv2.resize(sample.image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        scale = np.array([self.size / width, self.size / height], np.float32)
        boxes = np.clip(sample.boxes * np.tile(scale, 2), 0, self.size)
        landmarks = np.clip(sample.landmarks * scale, 0, self.size)
        return Sample(image, boxes, landmarks, sample.landmark_valid)


class RandomFlip:
    """Horizontal flip with probability ``prob``: ``x' = W - x`` and left/right landmarks swapped."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return sample
        boxes, landmarks = mirror_faces(sample.boxes, sample.landmarks, sample.image.shape[1])
        valid = swap_landmark_sides(sample.landmark_valid)
        return Sample(np.ascontiguousarray(sample.image[:, ::-1]), boxes, landmarks, valid)


class PhotoMetricDistortion:
    """mmdet's SSD-style colour jitter on float BGR pixels, each step with probability 0.5:
    brightness +-``brightness_delta``; contrast x[lo, hi] before or after the HSV steps;
    saturation x[lo, hi]; hue +-``hue_delta`` degrees (wrapped to [0, 360)); random channel order.
    Values are not clipped (as the official code)."""

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18,
    ) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_range = contrast_range
        self.saturation_range = saturation_range
        self.hue_delta = hue_delta

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image = sample.image.astype(np.float32, copy=True)
        if rng.integers(2):
            image += rng.uniform(-self.brightness_delta, self.brightness_delta)
        contrast_first = bool(rng.integers(2))
        if contrast_first and rng.integers(2):
            image *= rng.uniform(*self.contrast_range)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        if rng.integers(2):
            hsv[..., 1] *= rng.uniform(*self.saturation_range)
        if rng.integers(2):
            hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-self.hue_delta, self.hue_delta), 360.0)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        if not contrast_first and rng.integers(2):
            image *= rng.uniform(*self.contrast_range)
        if rng.integers(2):
            image = np.ascontiguousarray(image[..., rng.permutation(3)])
        return replace(sample, image=image)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[object]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)  # type: ignore[operator]
        return sample


SR_CROP_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
BASELINE_CROP_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0)


def scrfd_train_transforms(
    crop_scales: Sequence[float] = SR_CROP_SCALES,
    image_size: int = 640,
    clip_border: bool = True,
    pad_value: float = 128.0,
    flip_prob: float = 0.5,
    photometric: bool = True,
) -> Compose:
    """The official SCRFD training augmentation."""
    steps: list[object] = [RandomSquareCrop(crop_scales, clip_border, pad_value), Resize(image_size), RandomFlip(flip_prob)]
    if photometric:
        steps.append(PhotoMetricDistortion())
    return Compose(steps)


# ---------------------------------------------------------------------------------------------
# Pytorch_Retinaface (biubug6) training augmentation: crop -> distort -> pad to square -> mirror -> resize.
# ---------------------------------------------------------------------------------------------

RETINAFACE_CROP_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0)
_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


class InsideSquareCrop:
    """The port's ``_crop``: a square of ``scale * short_side`` placed fully inside the image, accepted
    when at least one face lies entirely inside it; faces whose centre is inside are kept and clipped,
    landmarks are clamped to the crop. After 250 rejected draws the image is kept whole and flagged
    for :class:`PadToSquare`."""

    def __init__(self, scales: Sequence[float] = RETINAFACE_CROP_SCALES, tries: int = 250) -> None:
        if not scales or not all(0 < s <= 1 for s in scales):
            raise ValueError(f"crops inside the image need scales in (0, 1], got {list(scales)}")
        self.scales = tuple(float(s) for s in scales)
        self.tries = tries

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        boxes = sample.boxes
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        for _ in range(self.tries):
            side = int(float(rng.choice(self.scales)) * min(height, width))
            left = 0 if width == side else int(rng.integers(0, width - side))
            top = 0 if height == side else int(rng.integers(0, height - side))
            right, bottom = left + side, top + side
            fully_inside = (boxes[:, 0] >= left) & (boxes[:, 1] >= top) & (boxes[:, 2] <= right) & (boxes[:, 3] <= bottom)
            centre_inside = (centers[:, 0] > left) & (centers[:, 1] > top) & (centers[:, 0] < right) & (centers[:, 1] < bottom)
            if fully_inside.any():  # (a face fully inside also has its centre inside)
                return self._crop(sample.select(centre_inside), left, top, side)
        return replace(sample, image=sample.image)  # unchanged; PadToSquare will square it

    @staticmethod
    def _crop(sample: Sample, left: int, top: int, side: int) -> Sample:
        offset = np.array([left, top], np.float32)
        boxes = sample.boxes.copy()
        boxes[:, :2] = np.maximum(boxes[:, :2], offset) - offset
        boxes[:, 2:] = np.minimum(boxes[:, 2:], offset + side) - offset
        landmarks = np.clip(sample.landmarks - offset, 0, side)
        image = sample.image[top : top + side, left : left + side]
        keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > 0
        return Sample(image, boxes[keep], landmarks[keep], sample.landmark_valid[keep])


class PadToSquare:
    """Pad a non-square image to a square at the top-left with ``fill`` (the port pads with its BGR mean)."""

    def __init__(self, fill: tuple[float, float, float] = (104.0, 117.0, 123.0)) -> None:
        self.fill = fill

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        if height == width:
            return sample
        side = max(height, width)
        canvas = np.empty((side, side, 3), sample.image.dtype)
        canvas[:] = self.fill
        canvas[:height, :width] = sample.image
        return replace(sample, image=canvas)


class Uint8ColorJitter:
    """The port's ``_distort`` on uint8 pixels: brightness +-32, contrast x[0.5, 1.5], saturation
    x[0.5, 1.5], hue +-18 (OpenCV's 0..180 scale, wrapped), each with probability 0.5, with contrast
    either first or last; values are clipped to 0..255 at every step."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image = sample.image.astype(np.float32)
        contrast_last = bool(rng.integers(2))
        if rng.integers(2):
            image = np.clip(image + rng.uniform(-32, 32), 0, 255)
        if not contrast_last and rng.integers(2):
            image = np.clip(image * rng.uniform(0.5, 1.5), 0, 255)
        hsv = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        if rng.integers(2):
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
        if rng.integers(2):
            hsv[..., 0] = np.mod(hsv[..., 0] + rng.integers(-18, 18), 180)
        image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
        if contrast_last and rng.integers(2):
            image = np.clip(image * rng.uniform(0.5, 1.5), 0, 255)
        return replace(sample, image=image)


class RandomInterpolationResize(Resize):
    """Resize to ``size x size`` with an interpolation drawn from linear, cubic, area, nearest, Lanczos."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        interpolation = _INTERPOLATIONS[int(rng.integers(len(_INTERPOLATIONS)))]
        image = cv2.resize(sample.image, (self.size, self.size), interpolation=interpolation)
        scale = np.array([self.size / width, self.size / height], np.float32)
        return Sample(image, sample.boxes * np.tile(scale, 2), sample.landmarks * scale, sample.landmark_valid)


def retinaface_train_transforms(
    image_size: int = 640, crop_scales: Sequence[float] = RETINAFACE_CROP_SCALES, flip_prob: float = 0.5, photometric: bool = True
) -> Compose:
    """The Pytorch_Retinaface training augmentation (mean subtraction happens when the tensor is built)."""
    steps: list[object] = [InsideSquareCrop(crop_scales)]
    if photometric:
        steps.append(Uint8ColorJitter())
    steps += [PadToSquare(), RandomFlip(flip_prob), RandomInterpolationResize(image_size)]
    return Compose(steps)
