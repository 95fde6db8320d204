"""DSFD's training augmentation: Improved Anchor Matching's data-anchor-sampling crop (paper section 3.4).

Facts: ``/work/shared/reference/dsfd_asfd_shf_eval.md`` section 1.7 (Tencent ``utils/augmentations.py``).
:class:`DataAnchorSamplingCrop` draws a crop mode uniformly from five: three SSD-style square crops (side =
the short side, or ``U[0.3, 1)`` of it) and two data-anchor-sampling crops (the paper's 2/5 : 3/5 split). A
data-anchor-sampling crop picks a random face of side ``s = sqrt(w * h)`` and a target anchor size ``a``
from the anchor scales truncated by the face size (:func:`anchor_choices`), and takes a square of side
``s * out_size / a`` around the face, so after the resize to ``out_size`` the face measures ``a`` pixels:
small faces are re-sampled as larger ones and large faces as smaller ones, matching the anchors.

Differences from the release, on purpose:

* The release clips a crop larger than the image to the image (then stretches the non-square result to
  640 x 640); here the part outside the image is filled with the BGR mean (104, 117, 123), so the face
  lands exactly at the anchor size and keeps its aspect ratio.
* The smallest kept face (8 x 8 px) is measured after the resize, not in crop pixels before it: a crop that
  enlarges a 5-px face to 16 px keeps its 5-px neighbours (now 16 px) as faces instead of making them
  background, and a crop that shrinks the image drops the faces that become too small to learn.
* For ``out_size`` below 640 the anchors larger than ``out_size`` are left out (a 512-px face does not fit
  a 320-px input); at 640 the choice is the release's.
* The photometric distortion runs after the resize (cheaper on large images; the same per-pixel colour
  operations, up to interpolation), and crop and resize are one affine warp (bilinear, as cv2.resize's
  default, up to the half-pixel convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from facescope.data.transforms import Compose, PhotoMetricDistortion, RandomFlip, Sample

#: The second-shot anchor scales the sampled face sizes are drawn from (reference section 1.7).
DAS_ANCHOR_SCALES: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
#: The five crop modes of the release: None = the whole short side; 0.3 / 0.5 = SSD-style random squares;
#: 0.7 / 0.9 = data-anchor-sampling (the values only name the modes there).
CROP_MODES: tuple[str, ...] = ("short_side", "ssd", "ssd", "anchor", "anchor")
DSFD_MEAN_BGR = (104.0, 117.0, 123.0)


def anchor_choices(face_side: float, out_size: int = 640, scales: Sequence[int] = DAS_ANCHOR_SCALES) -> tuple[int, ...]:
    """The target anchor sizes a face of side ``face_side`` may be re-sampled to (reference section 1.7).

    ``s > 256``: all six; ``s > 128``: up to 256; ``s > 64``: up to 128; ``s > 32``: up to 64; else 16 and 32.
    Anchors above ``out_size`` are left out (they would not fit the network input).

    Example:
        >>> anchor_choices(100.0)
        (16, 32, 64, 128)
        >>> anchor_choices(300.0, out_size=320)
        (16, 32, 64, 128, 256)
    """
    if face_side > 256:
        upper = 512
    elif face_side > 128:
        upper = 256
    elif face_side > 64:
        upper = 128
    elif face_side > 32:
        upper = 64
    else:
        upper = 32
    return tuple(a for a in scales if a <= upper and a <= out_size)


class DataAnchorSamplingCrop:
    """IAM's crop: SSD-style square crops (3/5) or data-anchor-sampling crops (2/5), see the module doc,
    returned resized to ``out_size x out_size``.

    A crop keeps the faces whose centre lies strictly inside it, clipped to it, with an area above
    ``min_area`` pixels of the resized crop (halved after every ``tries`` failed draws); landmarks are clamped
    to the crop.
    After ``max_rounds`` rounds without an accepted crop the image is used whole (padded to a square).

    Args:
        out_size: the side the crop is resized to (``data.image_size``).
        scales: anchor scales of the data-anchor-sampling mode.
        min_area: the smallest kept face area in network-input pixels (8 x 8; the release counts it in crop
            pixels before the resize, which drops the tiny faces a data-anchor-sampling crop enlarges).
        tries: crop draws per round.
        max_rounds: rounds before giving up.
        pad_value: BGR fill outside the image.
    """

    def __init__(
        self,
        out_size: int = 640,
        scales: Sequence[int] = DAS_ANCHOR_SCALES,
        min_area: float = 64.0,
        tries: int = 50,
        max_rounds: int = 8,
        pad_value: Sequence[float] = DSFD_MEAN_BGR,
    ) -> None:
        self.out_size = int(out_size)
        self.scales = tuple(int(s) for s in scales)
        self.min_area = float(min_area)
        self.tries = tries
        self.max_rounds = max_rounds
        self.pad_value = tuple(float(v) for v in pad_value)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if len(sample.boxes) == 0:
            return self._apply(sample, 0, 0, max(sample.image.shape[:2]), np.zeros(0, bool))
        min_area = self.min_area
        for _ in range(self.max_rounds):
            mode = CROP_MODES[int(rng.integers(len(CROP_MODES)))]
            for _ in range(self.tries):
                left, top, side = self.draw_window(sample, mode, rng)
                # min_area counts network-input pixels: in crop pixels it scales with (side / out_size)^2.
                keep = self.kept_faces(sample.boxes, left, top, side, min_area * (side / self.out_size) ** 2)
                if keep.any():
                    return self._apply(sample, left, top, side, keep)
            min_area /= 2
        height, width = sample.image.shape[:2]
        return self._apply(sample, 0, 0, max(height, width), np.ones(len(sample.boxes), bool))

    def draw_window(self, sample: Sample, mode: str, rng: np.random.Generator) -> tuple[int, int, int]:
        """``(left, top, side)`` of one square crop window of ``mode`` (may reach outside the image)."""
        height, width = sample.image.shape[:2]
        short = min(height, width)
        if mode in ("short_side", "ssd"):
            side = short if mode == "short_side" else max(int(rng.uniform(0.3, 1.0) * short), 1)
            left = int(rng.integers(0, width - side + 1))
            top = int(rng.integers(0, height - side + 1))
            return left, top, side
        face = sample.boxes[int(rng.integers(len(sample.boxes)))]
        return self.anchor_window(face, float(rng.choice(self.anchor_options(face))), rng)

    def anchor_options(self, face: np.ndarray) -> tuple[int, ...]:
        """The anchor sizes :func:`anchor_choices` allows for a ``[4]`` face box."""
        face_w, face_h = float(face[2] - face[0]), float(face[3] - face[1])
        return anchor_choices(math.sqrt(max(face_w * face_h, 1e-6)), self.out_size, self.scales)

    def anchor_window(self, face: np.ndarray, anchor: float, rng: np.random.Generator) -> tuple[int, int, int]:
        """A square containing ``face`` whose side makes the face ``anchor`` pixels after the resize.

        ``side = sqrt(w * h) * out_size / anchor`` (at least the face's larger side); the offset is drawn
        uniformly among the integer positions that keep the face inside the window.
        """
        x1, y1, x2, y2 = (float(v) for v in face)
        face_side = math.sqrt(max((x2 - x1) * (y2 - y1), 1e-6))
        side = max(int(round(face_side * self.out_size / anchor)), int(math.ceil(max(x2 - x1, y2 - y1))), 1)
        left = _offset_containing(x1, x2, side, rng)
        top = _offset_containing(y1, y2, side, rng)
        return left, top, side

    @staticmethod
    def kept_faces(boxes: np.ndarray, left: int, top: int, side: int, min_area: float) -> np.ndarray:
        """``[M]`` bool: centre strictly inside the window and clipped area above ``min_area``."""
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (centers[:, 0] > left) & (centers[:, 1] > top) & (centers[:, 0] < left + side) & (centers[:, 1] < top + side)
        clipped_w = np.minimum(boxes[:, 2], left + side) - np.maximum(boxes[:, 0], left)
        clipped_h = np.minimum(boxes[:, 3], top + side) - np.maximum(boxes[:, 1], top)
        return inside & (clipped_w * clipped_h > min_area)

    def _apply(self, sample: Sample, left: int, top: int, side: int, keep: np.ndarray) -> Sample:
        """Crop the ``side`` square at ``(left, top)`` and resize it to ``out_size`` in one affine warp.

        One warp instead of "paste, then resize": a window for a small anchor can be thousands of pixels
        wide (a 300-px face sampled to 16 px at 640 is a 12,000-px window), which is never materialised.
        Pixels outside the image take ``pad_value``; kept boxes are clipped to the window, then scaled.
        """
        kept = sample.select(keep)
        low = np.array([left, top], np.float32)
        high = low + side
        scale = self.out_size / side
        boxes = kept.boxes.copy()
        boxes[:, :2] = np.maximum(boxes[:, :2], low)
        boxes[:, 2:] = np.minimum(boxes[:, 2:], high)
        boxes = (boxes - np.tile(low, 2)) * scale
        landmarks = (np.clip(kept.landmarks, low, high) - low) * scale
        warp = np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]], np.float64)
        image = cv2.warpAffine(
            sample.image,
            warp,
            (self.out_size, self.out_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=self.pad_value,
        )
        return Sample(image.astype(np.float32, copy=False), boxes.astype(np.float32), landmarks.astype(np.float32), kept.landmark_valid)


def _offset_containing(low: float, high: float, side: int, rng: np.random.Generator) -> int:
    """Window start ``o`` (integer) with ``o <= low`` and ``o + side >= high``, drawn uniformly."""
    first = int(math.ceil(high - side))
    last = int(math.floor(low))
    if last < first:  # the face is wider than the window (cannot happen with side >= its larger side)
        return last
    return int(rng.integers(first, last + 1))


def dsfd_train_transforms(image_size: int = 640, flip_prob: float = 0.5, photometric: bool = True) -> Compose:
    """IAM crop resized to ``image_size`` -> flip -> SSD photometric distortion (mean subtraction happens
    when the tensor is built)."""
    steps: list[object] = [DataAnchorSamplingCrop(image_size), RandomFlip(flip_prob)]
    if photometric:
        steps.append(PhotoMetricDistortion())
    return Compose(steps)
