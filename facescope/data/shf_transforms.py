"""SHF's training augmentation (``bairdzhang/smallhardface`` @76fa1d8, reference section 3.5).

Per image: photometric distortion (on 0-255 float BGR, clipped), random crop (probability 0.5, width
and height ratios independently U(0.6, 1.0), up to 50 tries, at least one face centre inside, faces
kept by centre and clipped), horizontal flip (the release doubles the dataset with flipped copies;
a flip with probability 0.5 per draw is the same distribution), resize so that the short side is one
of ``short_sides`` (uniform) unless the long side would exceed ``max_long_side``, and a bottom/right
cut to a multiple of 16 (the release pads to /16 instead; a cut keeps batches free of padding, and
faces whose centre falls in the cut-off strip, at most 15 pixels, are dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np

from facescope.data.transforms import Compose, RandomFlip, Sample


class SHFPhotometricDistortion:
    """The release's colour jitter on float BGR 0-255, clipped to [0, 255] after every step.

    Brightness +-32 (p 0.5); then with equal odds either contrast x U(0.5, 1.5) (p 0.5) -> saturation
    x U(0.5, 1.5) (p 0.5, S clipped to [0, 1]) -> hue +-18 degrees mod 360 (p 0.5), or saturation -> hue
    -> contrast.
    """

    def __init__(self, brightness: float = 32.0, contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), hue: float = 18.0) -> None:  # fmt: skip
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        image = sample.image.astype(np.float32, copy=True)
        if rng.random() < 0.5:
            image = np.clip(image + rng.uniform(-self.brightness, self.brightness), 0, 255)
        steps = (self._contrast, self._saturation, self._hue)
        if rng.random() >= 0.5:
            steps = (self._saturation, self._hue, self._contrast)
        for step in steps:
            if rng.random() < 0.5:
                image = step(image, rng)
        return replace(sample, image=image)

    def _contrast(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(image * rng.uniform(*self.contrast), 0, 255)

    def _saturation(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hsv = cv2.cvtColor(image / 255.0, cv2.COLOR_BGR2HSV)  # float input: S in [0, 1], H in degrees
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*self.saturation), 0, 1)
        return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0, 0, 255)

    def _hue(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hsv = cv2.cvtColor(image / 255.0, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-self.hue, self.hue), 360.0)
        return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255.0, 0, 255)


def _keep_centres_inside(sample: Sample, left: int, top: int, width: int, height: int) -> Sample | None:
    """``sample`` cut to the window (faces kept by centre, shifted and clipped), None when no centre is inside."""
    centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
    inside = (
        (centres[:, 0] > left) & (centres[:, 0] < left + width) & (centres[:, 1] > top) & (centres[:, 1] < top + height)
    )
    if not inside.any():
        return None
    shift = np.array([left, top], np.float32)
    boxes = sample.boxes[inside] - np.tile(shift, 2)
    boxes = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    landmarks = sample.landmarks[inside] - shift
    image = sample.image[top : top + height, left : left + width]
    return Sample(np.ascontiguousarray(image), boxes, landmarks, sample.landmark_valid[inside])


class SHFRandomCrop:
    """With probability ``prob``, a window of ``U(lower, upper)`` x the width and, independently, the
    height at a random offset; up to ``max_tries`` windows until one holds a face centre (else the
    image is kept whole). An image without faces is kept whole."""

    def __init__(self, prob: float = 0.5, lower: float = 0.6, upper: float = 1.0, max_tries: int = 50) -> None:
        self.prob, self.lower, self.upper, self.max_tries = prob, lower, upper, max_tries

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if len(sample.boxes) == 0 or rng.random() >= self.prob:
            return sample
        height, width = sample.image.shape[:2]
        for _ in range(self.max_tries):
            crop_w = max(1, int(width * rng.uniform(self.lower, self.upper)))
            crop_h = max(1, int(height * rng.uniform(self.lower, self.upper)))
            left = int(rng.integers(0, width - crop_w + 1))
            top = int(rng.integers(0, height - crop_h + 1))
            cropped = _keep_centres_inside(sample, left, top, crop_w, crop_h)
            if cropped is not None:
                return cropped
        return sample


class ShortSideResize:
    """Scale so the short side is one of ``short_sides`` (uniform draw), unless the long side would
    exceed ``max_long_side`` (then the long side is brought to it), as Faster R-CNN's ``prep_im_for_blob``."""

    def __init__(self, short_sides: Sequence[int], max_long_side: int) -> None:
        self.short_sides = tuple(int(s) for s in short_sides)
        self.max_long_side = int(max_long_side)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        target = self.short_sides[int(rng.integers(len(self.short_sides)))]
        scale = target / min(height, width)
        if round(scale * max(height, width)) > self.max_long_side:
            scale = self.max_long_side / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        image = cv2.resize(sample.image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        factors = np.array([new_w / width, new_h / height], np.float32)
        return Sample(image, sample.boxes * np.tile(factors, 2), sample.landmarks * factors, sample.landmark_valid)


class CutToMultiple:
    """Cut the bottom/right so both sides are multiples of ``divisor`` (sides below it are kept, and
    the model's size check reports them); faces whose centre is cut off are dropped, the rest clipped."""

    def __init__(self, divisor: int = 16) -> None:
        self.divisor = divisor

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample.image.shape[:2]
        new_h = max(self.divisor, height - height % self.divisor)
        new_w = max(self.divisor, width - width % self.divisor)
        if (new_h, new_w) == (height, width):
            return sample
        centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
        keep = (centres[:, 0] < new_w) & (centres[:, 1] < new_h)
        boxes = np.clip(sample.boxes[keep], 0, np.array([new_w, new_h, new_w, new_h], np.float32))
        image = np.ascontiguousarray(sample.image[:new_h, :new_w])
        return Sample(image, boxes, sample.landmarks[keep], sample.landmark_valid[keep])


def shf_train_transforms(
    short_sides: Sequence[int] = (400, 800, 1200), max_long_side: int = 2000, flip_prob: float = 0.5,
    photometric: bool = True, divisor: int = 16,
) -> Compose:  # fmt: skip
    """The release's augmentation: photometric, crop, flip, multi-scale resize, cut to ``divisor``."""
    steps: list[object] = [SHFPhotometricDistortion()] if photometric else []
    steps += [SHFRandomCrop(), RandomFlip(flip_prob), ShortSideResize(short_sides, max_long_side), CutToMultiple(divisor)]
    return Compose(steps)


__all__ = [
    "CutToMultiple",
    "SHFPhotometricDistortion",
    "SHFRandomCrop",
    "ShortSideResize",
    "shf_train_transforms",
]
