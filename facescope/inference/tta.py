"""Test-time augmentation (TTA): image pyramids, flips, per-scale face-size filters and one merge.

How a Detector runs a :class:`TTASpec` (``Detector(..., tta="dsfd")``, ``facescope detect --tta``)
-------------------------------------------------------------------------------------------------
1. ``plan_passes(spec, image_hw, detector_scale=..., max_pixels=...)`` lists the passes: for
   each, the size the image is resized to, whether it is flipped, the face-size filter its
   detections go through, and the exact :class:`PassTransform` between original and pass pixels.
   Passes too large for the pixel budget are capped and carry a ``note`` for the caller to show.
2. For each pass: ``PassTransform.forward_image`` (resize, then flip) gives the pass image; the
   backend runs on it *at that size* (the detector's own resize is off; only stride padding), and
   the detector's per-pass ``candidates(...)`` (score threshold, decode, pre-NMS top-k) returns
   boxes/scores/landmarks in pass pixels. Passes of one size (a scale and its flip) are batched:
   they are adjacent in the plan and :func:`run_tta` hands them to the Detector together. An ONNX
   file with a fixed input size takes a pass that fits inside it padded at the bottom/right (the
   content stays at offset 0, 0) and refuses one that does not.
3. The protocol's per-pass rules (score threshold, top-k, NMS of DSFD's ``Detect``) are applied,
   ``PassTransform.to_original`` maps the candidates back to original pixels, and the pass's
   size filter (the "big"/"small" rules of S3FD/DSFD/PyramidBox) keeps the faces that pass may see.
4. The candidates of every pass are concatenated, optionally thresholded once more (SHF), and
   merged once: greedy NMS or box voting (:mod:`facescope.ops.voting`) with the protocol's IoU,
   singleton policy and cap. The result is the data contract in numpy: boxes ``[N, 4]``, scores
   ``[N]`` (descending), landmarks ``[N, 5, 2]`` or None.

:func:`run_tta` is that driver, with the backend given as a callable, so a Detector needs only to
wrap its single-pass candidates. This module, :mod:`facescope.ops.voting` and :mod:`facescope.ops.nms`
use numpy and OpenCV only and import no torch.

Every number of the published protocols cites ``../shared/reference/dsfd_asfd_shf_eval.md``
(written ``ref:LINE`` below); where the reference is silent, the comment says what the value rests on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from typing import Literal, Union

import cv2
import numpy as np

from facescope.errors import FacescopeError
from facescope.named_registry import NamedRegistry
from facescope.ops.nms import nms_numpy
from facescope.ops.voting import SINGLETON_POLICIES, SingletonPolicy, merge_detections
from facescope.structures import LANDMARK_FLIP_PAIRS

#: Default pixel budget of one pass: 16 MP (e.g. 4618 x 3464). The largest pass any published protocol
#: plans, on any image size, is DSFD's ``max_shrink`` pass, which its formula keeps at or below
#: 2**31 / 200 ~ 10.7 MP (ref:526; S3FD's keeps 3.7 MP, RetinaFace's pyramid 4.3 MP, SHF's 2.9 MP), so
#: the cap never changes a published result; past it, activations of the large backbones (ResNet-152
#: DSFD: 64-256 float channels at strides 2-4, about 1 GB per such map at 16 MP) run into GBs per pass.
DEFAULT_MAX_PASS_PIXELS = 16_000_000

Candidates = tuple[np.ndarray, np.ndarray, Union[np.ndarray, None]]
"""``(boxes float [K, 4], scores float [K], landmarks float [K, 5, 2] or None)``."""


class UnknownTTAProtocolError(FacescopeError, KeyError):
    """A TTA protocol name is not in :data:`TTA_PROTOCOLS`."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------------
# Geometry of one pass
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassTransform:
    """The exact map between original-image pixels and the pixels of one pass's input.

    Original to pass: ``u = x * scale_x + offset_x`` (likewise y), then, when ``flipped``,
    ``u' = flip_width - flip_pixel_offset - u`` with ``x1``/``x2`` swapped and left/right landmarks
    swapped (:data:`facescope.structures.LANDMARK_FLIP_PAIRS`). The flip happens in pass pixels,
    after resizing, about the width of the array that is flipped.

    ``flip_pixel_offset`` is the pixel convention of the source: ``0`` for ``x' = W - x``
    (S3FD/DSFD/PyramidBox, ref:530, and SHF), ``1`` for ``x' = W - x - 1`` (insightface
    RetinaFace, ref:515).

    Two deliberate differences from the sources, both sub-pixel: the S3FD family mirrors the
    original and then resizes (``det1``), here the resized image is mirrored (the same image when
    ``W * scale`` is a whole number, as at ``shrink = 1``); and insightface divides boxes by its
    nominal scale, here by the actual ratio of the rounded pass size, which makes the map exact.

    Attributes:
        scale_x, scale_y: original-to-pass factors; :meth:`for_resize` records the actual ratio
            ``pass_w / W`` of the rounded size, so the map back is exact.
        offset_x, offset_y: content offset in pass pixels (letterbox padding at the top/left).
        flipped: whether the pass image is mirrored horizontally.
        flip_width: width, in pass pixels, of the array that is mirrored.
        flip_pixel_offset: see above.
        output_hw: ``(height, width)`` of the pass image :meth:`forward_image` produces.
    """

    scale_x: float
    scale_y: float
    output_hw: tuple[int, int]
    offset_x: float = 0.0
    offset_y: float = 0.0
    flipped: bool = False
    flip_width: float = 0.0
    flip_pixel_offset: float = 0.0

    def __post_init__(self) -> None:
        if not (self.scale_x > 0 and self.scale_y > 0):
            raise ValueError(f"scales must be > 0, got {self.scale_x}, {self.scale_y}")
        if self.flipped and self.flip_width <= 0:
            raise ValueError(f"a flipped pass needs flip_width > 0, got {self.flip_width}")

    @classmethod
    def for_resize(
        cls, original_hw: tuple[int, int], output_hw: tuple[int, int], flipped: bool, flip_pixel_offset: float = 0.0
    ) -> PassTransform:
        """Resize ``original_hw`` to ``output_hw`` (no padding), then mirror when ``flipped``."""
        (height, width), (out_h, out_w) = original_hw, output_hw
        return cls(out_w / width, out_h / height, (out_h, out_w), 0.0, 0.0, flipped, float(out_w), flip_pixel_offset)

    def _mirror_x(self, boxes: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Mirror in pass pixels; an involution (mirroring twice gives the input back)."""
        axis = self.flip_width - self.flip_pixel_offset
        mirrored = boxes.copy()
        mirrored[:, 0] = axis - boxes[:, 2]
        mirrored[:, 2] = axis - boxes[:, 0]
        if landmarks is None:
            return mirrored, None
        points = landmarks.copy()
        points[..., 0] = axis - landmarks[..., 0]
        for left, right in LANDMARK_FLIP_PAIRS:
            points[:, [left, right]] = points[:, [right, left]]
        return mirrored, points

    def to_pass(self, boxes: np.ndarray, landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Original pixels -> pass pixels. ``boxes [K, 4]``, ``landmarks [K, 5, 2]`` or None."""
        scale = np.array([self.scale_x, self.scale_y], np.float64)
        offset = np.array([self.offset_x, self.offset_y], np.float64)
        out = (np.asarray(boxes, np.float64).reshape(-1, 2, 2) * scale + offset).reshape(-1, 4)
        points = None if landmarks is None else np.asarray(landmarks, np.float64) * scale + offset
        if self.flipped:
            out, points = self._mirror_x(out, points)
        return out.astype(np.float32), None if points is None else points.astype(np.float32)

    def to_original(
        self, boxes: np.ndarray, landmarks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pass pixels -> original pixels; the exact inverse of :meth:`to_pass`.

        Args:
            boxes: ``float [K, 4]`` x1, y1, x2, y2 in pass pixels.
            landmarks: ``float [K, 5, 2]`` in pass pixels, or None.

        Returns:
            ``(boxes float32 [K, 4], landmarks float32 [K, 5, 2] or None)`` in original pixels,
            with ``x1 <= x2`` kept and left/right landmarks swapped back after a flip.
        """
        out = np.asarray(boxes, np.float64).reshape(-1, 4)
        points = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
        if self.flipped:
            out, points = self._mirror_x(out, points)
        scale = np.array([self.scale_x, self.scale_y], np.float64)
        offset = np.array([self.offset_x, self.offset_y], np.float64)
        out = ((out.reshape(-1, 2, 2) - offset) / scale).reshape(-1, 4)
        if points is not None:
            points = (points - offset) / scale
        return out.astype(np.float32), None if points is None else points.astype(np.float32)

    def forward_image(self, image: np.ndarray) -> np.ndarray:
        """The pass image: bilinear resize (cv2 ``INTER_LINEAR``, as DSFD and SHF, ref:475, ref:544),
        zero padding by the integer offsets at the top/left, then the mirror. ``H x W x C`` in, same dtype out.
        """
        out_h, out_w = self.output_hw
        pad_y, pad_x = int(round(self.offset_y)), int(round(self.offset_x))
        content_hw = (out_h - pad_y, out_w - pad_x)
        resized = image
        if image.shape[:2] != content_hw:
            resized = cv2.resize(image, (content_hw[1], content_hw[0]), interpolation=cv2.INTER_LINEAR)
        if pad_x or pad_y:
            pads = ((pad_y, 0), (pad_x, 0)) + ((0, 0),) * (resized.ndim - 2)
            resized = np.pad(resized, pads)
        if self.flipped:
            resized = resized[:, ::-1]
        return np.ascontiguousarray(resized)


# --------------------------------------------------------------------------------------------------
# The vocabulary of a TTA protocol
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeFilter:
    """Which faces a pass may contribute, measured in original pixels with ``+size_offset`` widths.

    ``"big"`` keeps ``max(w, h) > threshold`` (shrunk images only see big faces reliably);
    ``"small"`` keeps ``min(w, h) < threshold`` (enlarged images only see small faces), ref:521-522.
    """

    keep: Literal["big", "small"]
    threshold: float
    size_offset: float = 1.0

    def mask(self, boxes: np.ndarray) -> np.ndarray:
        """``boxes [K, 4]`` in original pixels -> ``bool [K]``, True for the faces kept."""
        widths = boxes[:, 2] - boxes[:, 0] + self.size_offset
        heights = boxes[:, 3] - boxes[:, 1] + self.size_offset
        if self.keep == "big":
            return np.maximum(widths, heights) > self.threshold
        return np.minimum(widths, heights) < self.threshold


BIG_FACES = SizeFilter("big", 30.0)  # "big" = max(w,h) > 30 with +1 widths, ref:521-522
SMALL_FACES = SizeFilter("small", 100.0)  # "small" = min(w,h) < 100 with +1 widths, ref:521-522


@dataclass(frozen=True)
class Factors:
    """Scale factors of a base scale, each optionally with its own size filter.

    ``base="detector"``: factors of the scale the detector's own single-pass resize would apply
    to this image (``plan_passes(..., detector_scale=...)``), so ``1.0`` is the usual single pass.
    ``base="original"``: factors of the original image size.
    """

    factors: tuple[float, ...]
    base: Literal["detector", "original"] = "detector"
    size_filters: tuple[SizeFilter | None, ...] | None = None

    def __post_init__(self) -> None:
        if not self.factors or any(f <= 0 for f in self.factors):
            raise ValueError(f"factors must be a non-empty tuple of positive numbers, got {self.factors}")
        if self.size_filters is not None and len(self.size_filters) != len(self.factors):
            raise ValueError(
                f"size_filters needs one entry per factor ({len(self.factors)}), got {len(self.size_filters)}"
            )


@dataclass(frozen=True)
class ShortSidePyramid:
    """Absolute short sides around a base: the base scale sends the short side to ``base_short``
    unless the long side would then exceed ``base_max_long`` (then the long side goes to
    ``base_max_long``); pass ``i`` uses ``sizes[i] / base_short * base_scale`` (insightface
    RetinaFace ref:514-515, SHF ref:473-474)."""

    sizes: tuple[int, ...]
    base_short: int
    base_max_long: int

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) <= 0 or self.base_short <= 0 or self.base_max_long <= 0:
            raise ValueError(f"pyramid sizes and base sides must be positive, got {self}")


@dataclass(frozen=True)
class ShrinkRule:
    """The S3FD / DSFD / PyramidBox scale schedule computed from ``max_shrink`` (ref:519-542)."""

    family: Literal["s3fd", "dsfd", "pyramidbox"]


ScaleRule = Union[Factors, ShortSidePyramid, ShrinkRule]


@dataclass(frozen=True)
class MergeSpec:
    """How the candidates of all passes become one set of detections.

    Attributes:
        method: ``"nms"`` (greedy, suppress IoU > iou) or ``"box_voting"`` (cluster IoU >= iou).
        iou: the threshold.
        singleton: box voting's policy for clusters of one (ignored by NMS).
        max_detections: cap on the merged detections (None: none).
        pixel_offset: ``1.0`` for "+1" widths in IoU (every published voting script, ref:492).
    """

    method: Literal["nms", "box_voting"]
    iou: float
    singleton: SingletonPolicy = "keep"
    max_detections: int | None = None
    pixel_offset: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"merge iou must be in (0, 1], got {self.iou}")
        if self.method not in ("nms", "box_voting"):
            raise ValueError(f"merge method must be 'nms' or 'box_voting', got {self.method!r}")
        if self.singleton not in SINGLETON_POLICIES:
            raise ValueError(f"singleton must be one of {SINGLETON_POLICIES}, got {self.singleton!r}")


@dataclass(frozen=True)
class TTASpec:
    """A test-time augmentation protocol.

    Attributes:
        name: registry name.
        scales: the scale rule (:class:`Factors`, :class:`ShortSidePyramid` or :class:`ShrinkRule`).
        flip: with ``Factors``/``ShortSidePyramid``, every scale also runs mirrored; with a
            ``ShrinkRule``, only the base ``shrink`` pass does (``det1``, ref:530), as in the sources.
        flip_pixel_offset: ``x' = W - offset - x`` convention of the mirror (see :class:`PassTransform`).
        merge: the one merge over all passes.
        pass_score_threshold: per-pass candidate threshold (``score >= t``) the protocol prescribes,
            or None to keep the detector's own.
        pass_top_k: per-pass cap on candidates by score (None: none).
        pass_nms_iou: per-pass greedy NMS before the merge (DSFD's ``Detect``), or None.
        pass_clip: clip each pass's boxes to its image, ``[0, w] x [0, h]`` in pass pixels (SHF).
        union_score_threshold: threshold (``score > t``) on the union of all passes before the merge.
        source: where the protocol is written down.
    """

    name: str
    scales: ScaleRule
    flip: bool
    merge: MergeSpec
    flip_pixel_offset: float = 0.0
    pass_score_threshold: float | None = None
    pass_top_k: int | None = None
    pass_nms_iou: float | None = None
    pass_clip: bool = False
    union_score_threshold: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.pass_top_k is not None and self.pass_top_k < 1:
            raise ValueError(f"pass_top_k must be >= 1 or None, got {self.pass_top_k}")
        if self.pass_nms_iou is not None and not 0.0 < self.pass_nms_iou <= 1.0:
            raise ValueError(f"pass_nms_iou must be in (0, 1] or None, got {self.pass_nms_iou}")
        if self.flip_pixel_offset not in (0.0, 1.0):
            raise ValueError(f"flip_pixel_offset must be 0 or 1, got {self.flip_pixel_offset}")


@dataclass(frozen=True)
class PassPlan:
    """One planned pass.

    Attributes:
        label: what the pass is in its source (``"det0"``, ``"det_b"``, ``"pyramid"``, ...).
        scale: nominal original-to-pass factor (after any budget cap).
        target_hw: ``(height, width)`` of the pass image.
        flipped: whether the pass image is mirrored.
        size_filter: faces kept from this pass (in original pixels), or None for all.
        transform: the exact geometry, see :class:`PassTransform`.
        note: set when the pixel budget changed the pass, for the caller to show.
    """

    label: str
    scale: float
    target_hw: tuple[int, int]
    flipped: bool
    size_filter: SizeFilter | None
    transform: PassTransform
    note: str | None = None


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


def _truncate_2_decimals(value: float) -> float:
    """Cut (not round) to two decimals, as PyramidBox's ``get_round`` does on ``str(value)`` (ref:527)."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def max_shrink(family: Literal["s3fd", "dsfd", "pyramidbox"], image_hw: tuple[int, int]) -> float:
    """The largest zoom a S3FD-family protocol allows for an image of ``image_hw`` (ref:524-528)."""
    area = float(image_hw[0] * image_hw[1])
    if family == "s3fd":
        return math.sqrt(0x7FFFFFFF / 577.0 / area)  # ref:525
    if family == "dsfd":
        return min(math.sqrt(0x7FFFFFFF / 200.0 / area), 3.0)  # ref:526, "capped at 3"
    if family == "pyramidbox":
        value = min(math.sqrt(0x7FFFFFFF / 577.0 / area), math.sqrt(678 * 1024 * 4 / area))  # ref:527
        value = _truncate_2_decimals(value) - 0.3  # ref:527-528
        # ref:528: minus 0.1/0.2/0.3/0.4/0.5 in [1.5,2)/[2,3)/[3,4)/[4,5)/>=5
        steps = ((1.5, 2.0, 0.1), (2.0, 3.0, 0.2), (3.0, 4.0, 0.3), (4.0, 5.0, 0.4), (5.0, math.inf, 0.5))
        for low, high, cut in steps:
            if low <= value < high:
                return value - cut
        return value
    raise ValueError(f"unknown max_shrink family {family!r}")


_Planned = tuple[str, float, bool, Union[SizeFilter, None]]  # label, scale, flipped, size filter


def _shrink_schedule(rule: ShrinkRule, image_hw: tuple[int, int], flip: bool) -> list[_Planned]:
    """S3FD ``detect``/``flip_test``/``multi_scale_test`` (+ ``multi_scale_test_pyramid``), ref:530-542."""
    family = rule.family
    top = max_shrink(family, image_hw)
    shrink = min(top, 1.0)  # ref:521
    passes: list[_Planned] = [("det0", shrink, False, None)]  # ref:530
    if flip:
        passes.append(("det1", shrink, True, None))  # ref:530
    small_scale = 0.5 if top >= 0.75 else 0.5 * top  # ref:532
    passes.append(("det_s", small_scale, False, BIG_FACES))  # ref:532-533: keep big only
    if family == "dsfd" and top > 0.75:
        passes.append(("det_s", 0.75, False, BIG_FACES))  # ref:533, DSFD only
    big_scale = min(2.0, top) if top > 1 else (small_scale + top) / 2  # ref:534
    det_b = [big_scale]
    if family == "dsfd" and top > 1.5:
        det_b.append(1.5)  # ref:535, DSFD only
    if top > 2:  # ref:535-536: double while below max_shrink, then max_shrink itself
        big_scale *= 2
        while big_scale < top:
            det_b.append(big_scale)
            big_scale *= 2
        det_b.append(top)
    det_b_filter = SMALL_FACES if big_scale > 1 else BIG_FACES  # ref:537, on the final bt
    passes.extend(("det_b", scale, False, det_b_filter) for scale in det_b)
    if family in ("dsfd", "pyramidbox"):  # ref:538-540
        passes.append(("pyramid", 0.25, False, BIG_FACES))
        steps = (0.75, 1.25, 1.5, 1.75) if family == "pyramidbox" else (1.25, 1.75, 2.25)  # ref:539
        for scale in steps:
            if scale <= top:
                passes.append(("pyramid", scale, False, SMALL_FACES if scale > 1 else BIG_FACES))  # ref:540
    return passes


def pyramid_base_scale(image_hw: tuple[int, int], base_short: int, base_max_long: int) -> float:
    """Short side to ``base_short`` unless the rounded long side would exceed ``base_max_long``.

    The rounding (``np.round(scale * long) > max``) is SHF's ``_compute_scaling_factor``
    (bairdzhang/smallhardface ``lib/utils/test_utils.py``); the reference states the rule (ref:473, ref:514).
    """
    short, long = min(image_hw), max(image_hw)
    scale = base_short / short
    if round(scale * long) > base_max_long:
        scale = base_max_long / long
    return scale


def _scale_schedule(spec: TTASpec, image_hw: tuple[int, int], detector_scale: float) -> list[_Planned]:
    rule = spec.scales
    if isinstance(rule, ShrinkRule):
        return _shrink_schedule(rule, image_hw, spec.flip)
    planned: list[_Planned] = []
    if isinstance(rule, ShortSidePyramid):
        base = pyramid_base_scale(image_hw, rule.base_short, rule.base_max_long)
        scales = [size / rule.base_short * base for size in rule.sizes]
        filters: Sequence[SizeFilter | None] = [None] * len(scales)
        label = "pyramid"
    elif isinstance(rule, Factors):
        base = detector_scale if rule.base == "detector" else 1.0
        scales = [factor * base for factor in rule.factors]
        filters = rule.size_filters or [None] * len(scales)
        label = "scale"
    else:  # pragma: no cover - the Union is closed
        raise TypeError(f"unknown scale rule {rule!r}")
    for scale, size_filter in zip(scales, filters):
        planned.append((label, scale, False, size_filter))
        if spec.flip:  # the mirrored pass right after its scale: same size, batchable
            planned.append((label, scale, True, size_filter))
    return planned


def plan_passes(
    spec: TTASpec,
    image_hw: tuple[int, int],
    *,
    detector_scale: float = 1.0,
    max_pixels: int = DEFAULT_MAX_PASS_PIXELS,
) -> list[PassPlan]:
    """The passes ``spec`` runs on an image of ``image_hw``, in the order of its source.

    Args:
        spec: the protocol.
        image_hw: ``(height, width)`` of the original image.
        detector_scale: for ``Factors(base="detector")``: the scale the detector's single-pass
            resize would apply to this image (e.g. ``640 / max(H, W)`` for a 640 letterbox).
        max_pixels: per-pass budget; a pass whose image would have more pixels is shrunk to the
            largest scale that fits, and gets a ``note``. Passes that the cap makes identical to an
            earlier one (same size, flip and filter) are dropped, noted on the earlier one.

    Returns:
        The passes. Pass sizes are ``round(W * scale)`` x ``round(H * scale)`` (at least 1), as
        ``cv2.resize(fx=scale, fy=scale)`` in the sources; transforms record the actual ratios.
    """
    height, width = image_hw
    if height < 1 or width < 1:
        raise ValueError(f"image_hw must be positive, got {image_hw}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if detector_scale <= 0:
        raise ValueError(f"detector_scale must be > 0, got {detector_scale}")
    cap_scale = math.sqrt(max_pixels / (height * width))
    plans: list[PassPlan] = []
    seen: dict[tuple[tuple[int, int], bool, SizeFilter | None], int] = {}
    for label, scale, flipped, size_filter in _scale_schedule(spec, image_hw, detector_scale):
        target_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
        name = f"TTA pass {label} x{scale:.3g}{' flipped' if flipped else ''}"
        note = None
        if target_hw[0] * target_hw[1] > max_pixels:
            capped_hw = (max(1, math.floor(height * cap_scale)), max(1, math.floor(width * cap_scale)))
            note = (
                f"{name} would be {target_hw[1]}x{target_hw[0]} ({target_hw[0] * target_hw[1] / 1e6:.1f} MP); "
                f"capped to x{cap_scale:.3g} ({capped_hw[1]}x{capped_hw[0]}) by the {max_pixels / 1e6:g} MP "
                "per-pass budget"
            )
            scale, target_hw = cap_scale, capped_hw
        key = (target_hw, flipped, size_filter)
        if key not in seen:
            seen[key] = len(plans)
        elif note is not None:  # a pass the cap made identical to an earlier one runs once
            earlier = plans[seen[key]]
            dropped = f"{name}, capped to the same size, is skipped"
            plans[seen[key]] = replace(earlier, note=f"{earlier.note}; {dropped}" if earlier.note else dropped)
            continue
        transform = PassTransform.for_resize(image_hw, target_hw, flipped, spec.flip_pixel_offset)
        plans.append(PassPlan(label, scale, target_hw, flipped, size_filter, transform, note))
    return plans


def filter_candidates(
    plan: PassPlan, boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None
) -> Candidates:
    """Keep the candidates of one pass (already in original pixels) that its size filter allows."""
    if plan.size_filter is None:
        return boxes, scores, landmarks
    keep = plan.size_filter.mask(boxes)
    return boxes[keep], scores[keep], None if landmarks is None else landmarks[keep]


# --------------------------------------------------------------------------------------------------
# The published protocols and two user-level ones
# --------------------------------------------------------------------------------------------------

_REF = "../shared/reference/dsfd_asfd_shf_eval.md"

TTA_PROTOCOLS: NamedRegistry[TTASpec] = NamedRegistry.of(
    "TTA protocol",
    ((spec.name, spec) for spec in (
        TTASpec(
            name="s3fd",
            scales=ShrinkRule("s3fd"),  # ref:525, ref:530-537
            flip=True,  # det1, ref:530
            flip_pixel_offset=0.0,  # x1' = W - x2, ref:530
            # singletons dropped ref:499, first 750 ref:503, IoU 0.3 ref:505, vote(det0, det1, det_s, det_b) ref:541-542
            merge=MergeSpec("box_voting", iou=0.3, singleton="drop", max_detections=750),
            source=f"S3FD wider_test.py, {_REF} §4.1 and §4.3",
        ),
        TTASpec(
            name="dsfd",
            scales=ShrinkRule("dsfd"),  # ref:526, ref:530-540
            flip=True,  # ref:530
            flip_pixel_offset=0.0,  # ref:530
            # singletons dropped ref:499, first 750 ref:503, IoU 0.3 ref:505, vote over all five groups ref:542
            merge=MergeSpec("box_voting", iou=0.3, singleton="drop", max_detections=750),
            pass_score_threshold=0.01,  # Tencent Detect conf_thresh 0.01, ref:213
            pass_top_k=5000,  # the top-5000 scores enter NMS, ref:213-214
            # Detect's NMS 0.3, ref:213. Continuous IoU (pixel offset 0): the SSD-style Detect works on
            # normalised coordinates, where "+1 pixel" has no meaning (SSD lineage; the reference is silent).
            pass_nms_iou=0.3,
            source=f"Tencent/FaceDetection-DSFD widerface_val.py, {_REF} §1.9, §4.1 and §4.3",
        ),
        TTASpec(
            name="pyramidbox",
            scales=ShrinkRule("pyramidbox"),  # ref:527-528, ref:530-540
            flip=True,  # ref:530
            flip_pixel_offset=0.0,  # ref:530
            # last singleton kept ref:500-501, first 750 ref:503, IoU 0.3 ref:505, vote over all five groups ref:542
            merge=MergeSpec("box_voting", iou=0.3, singleton="keep_last", max_detections=750),
            source=f"PaddlePaddle/models widerface_eval.py, {_REF} §4.1 and §4.3",
        ),
        TTASpec(
            name="retinaface",
            # short side 800 / long side <= 1200 as base, [500, 800, 1100, 1400, 1700] / 800 x base: ref:514-515
            scales=ShortSidePyramid(sizes=(500, 800, 1100, 1400, 1700), base_short=800, base_max_long=1200),
            flip=True,  # ref:515
            flip_pixel_offset=1.0,  # x' = W - x - 1, ref:515
            # last singleton kept ref:500-501, loop stops at 750 ref:503, IoU 0.4 ref:505-506 and ref:516
            merge=MergeSpec("box_voting", iou=0.4, singleton="keep_last", max_detections=750),
            pass_score_threshold=0.02,  # ref:515-516 (the stride-4 decay4 belongs to the model's post-processing)
            source=f"deepinsight/insightface retinaface test_widerface.py, {_REF} §4.1 and §4.2",
        ),
        TTASpec(
            name="shf",
            # PYRAMID_BASE_SIZE [800, 1200], scales s / 800 x base for s in [100, 300, 600, 1000, 1400]: ref:473-474
            scales=ShortSidePyramid(sizes=(100, 300, 600, 1000, 1400), base_short=800, base_max_long=1200),
            flip=True,  # "flip at every scale", ref:475
            # x' = w - x in pass pixels: smallhardface lib/test.py forward_net mirrors the boxes blob
            # with ``w - boxes[:, [3, 1]]`` (the reference does not state SHF's convention).
            flip_pixel_offset=0.0,
            merge=MergeSpec("box_voting", iou=0.4, singleton="keep_last", max_detections=None),  # ref:478-480, ref:504
            pass_score_threshold=0.002,  # ref:476
            pass_top_k=10_000,  # ref:476
            # "clip to image", ref:476; the reference gives no pixel convention, so the pass image's edges
            pass_clip=True,
            union_score_threshold=0.05,  # "keep score > 0.05", ref:478
            source=f"bairdzhang/smallhardface lib/test.py, {_REF} §3.7 and §4.1",
        ),
        TTASpec(
            name="flip",
            scales=Factors((1.0,)),
            flip=True,
            # IoU 0.4 as RetinaFace and SHF vote (ref:505-506). Singletons are kept: a face found
            # by one of the two passes only is still a face to a user (voting would drop it, ref:507-508).
            merge=MergeSpec("box_voting", iou=0.4, singleton="keep"),
            source="facescope: the detector's single pass and its mirror, box voting",
        ),
        TTASpec(
            name="multiscale",
            scales=Factors((0.5, 1.0, 1.5)),
            flip=True,
            merge=MergeSpec("box_voting", iou=0.4, singleton="keep"),  # as "flip"
            source="facescope: 0.5x, 1x, 1.5x the detector's single-pass scale, each mirrored too, box voting",
        ),
    )),
    error=UnknownTTAProtocolError,
    hint=lambda names: f"known: {', '.join(names)}",
)


def get_tta_protocol(name: str) -> TTASpec:
    """The protocol registered as ``name``; an unknown name raises with the closest known name."""
    return TTA_PROTOCOLS.get(name)


NO_TTA = "none"  # the name that asks for the single pass, e.g. to switch off a preset's protocol


def resolve_tta(tta: TTASpec | str | None) -> TTASpec | None:
    """A protocol from a :class:`TTASpec`, a registered name, or None / ``"none"`` (single pass).

    Raises:
        UnknownTTAProtocolError: an unknown name (the message suggests the closest known one).
    """
    if tta is None or isinstance(tta, TTASpec):
        return tta
    if isinstance(tta, str):
        return None if tta == NO_TTA else get_tta_protocol(tta)
    raise FacescopeError(f"tta must be a protocol name, a TTASpec or None, got {type(tta).__name__}")


# --------------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TTAResult:
    """Merged detections of all passes, in original pixels.

    Attributes:
        boxes: ``float32 [N, 4]``; scores: ``float32 [N]``, descending; landmarks: ``float32 [N, 5, 2]`` or None.
        passes: the passes that ran.
        notes: the passes' notes (pixel-budget caps), for the caller to show.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None
    passes: tuple[PassPlan, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())


def _as_candidates(output: Candidates, where: str) -> Candidates:
    boxes, scores, landmarks = output
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) if np.size(boxes) == 0 else np.asarray(boxes, np.float32)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"{where}: expected boxes [K, 4] and scores [K], got {list(boxes.shape)} and {list(scores.shape)}"
        )
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float32)
        if landmarks.shape != (boxes.shape[0], 5, 2):
            raise ValueError(f"{where}: expected landmarks [{boxes.shape[0]}, 5, 2], got {list(landmarks.shape)}")
    return boxes, scores, landmarks


def _select(candidates: Candidates, index: np.ndarray) -> Candidates:
    boxes, scores, landmarks = candidates
    return boxes[index], scores[index], None if landmarks is None else landmarks[index]


def apply_pass_rules(spec: TTASpec, candidates: Candidates, pass_hw: tuple[int, int]) -> Candidates:
    """The protocol's per-pass rules, in the pixels of a ``pass_hw`` pass image: clipping,
    ``score >= pass_score_threshold``, the ``pass_top_k`` best, then greedy NMS at ``pass_nms_iou``
    (continuous IoU). Idempotent, so it is harmless when the detector's candidates already applied
    the same rules."""
    boxes, scores, landmarks = candidates
    if spec.pass_clip:
        boxes = np.stack(
            [
                np.clip(boxes[:, 0], 0, pass_hw[1]),
                np.clip(boxes[:, 1], 0, pass_hw[0]),
                np.clip(boxes[:, 2], 0, pass_hw[1]),
                np.clip(boxes[:, 3], 0, pass_hw[0]),
            ],
            axis=1,
        ).astype(boxes.dtype)
        candidates = (boxes, scores, landmarks)
    if spec.pass_score_threshold is not None:
        candidates = _select(candidates, np.flatnonzero(scores >= spec.pass_score_threshold))
    if spec.pass_top_k is not None and candidates[1].shape[0] > spec.pass_top_k:
        order = np.argsort(-candidates[1], kind="stable")[: spec.pass_top_k]
        candidates = _select(candidates, order)
    if spec.pass_nms_iou is not None:
        candidates = _select(candidates, nms_numpy(candidates[0], candidates[1], spec.pass_nms_iou, 0.0))
    return candidates


RunPass = Callable[[np.ndarray], Candidates]
RunBatch = Callable[[list[np.ndarray]], Sequence[Candidates]]
Progress = Callable[[int, int, PassPlan], None]


def run_tta(
    spec: TTASpec,
    image: np.ndarray,
    run_pass: RunPass | None = None,
    *,
    run_batch: RunBatch | None = None,
    detector_scale: float = 1.0,
    max_pixels: int = DEFAULT_MAX_PASS_PIXELS,
    progress: Progress | None = None,
) -> TTAResult:
    """Run every pass of ``spec`` on ``image`` and merge them (the module docstring has the flow).

    Args:
        spec: the protocol.
        image: ``H x W x 3`` uint8 BGR (any array ``forward_image`` can resize).
        run_pass: the detector's single pass: pass image -> ``(boxes [K, 4], scores [K],
            landmarks [K, 5, 2] or None)`` in that pass image's pixels, run at the image's own size.
        run_batch: alternative to ``run_pass``: a list of same-size pass images -> one result each;
            the passes of one size (a scale and its mirror) are then given together.
        detector_scale: see :func:`plan_passes`.
        max_pixels: per-pass pixel budget, see :func:`plan_passes`.
        progress: called as ``progress(index, total, plan)`` before each pass runs (batched passes: per batch).

    Returns:
        A :class:`TTAResult` in original pixels.
    """
    if (run_pass is None) == (run_batch is None):
        raise ValueError("give exactly one of run_pass and run_batch")
    if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be an H x W (x C) array, got shape {list(image.shape)}")
    plans = plan_passes(spec, image.shape[:2], detector_scale=detector_scale, max_pixels=max_pixels)

    groups: list[list[int]] = []  # consecutive passes of one size run together when batching
    for index, plan in enumerate(plans):
        if run_batch is not None and groups and plans[groups[-1][0]].target_hw == plan.target_hw:
            groups[-1].append(index)
        else:
            groups.append([index])

    collected: list[Candidates] = []
    for group in groups:
        if progress is not None:
            progress(group[0], len(plans), plans[group[0]])
        images = [plans[i].transform.forward_image(image) for i in group]
        outputs = [run_pass(images[0])] if run_pass is not None else list(run_batch(images))  # type: ignore[misc]
        if len(outputs) != len(group):
            raise ValueError(f"run_batch returned {len(outputs)} results for {len(group)} images")
        for index, output in zip(group, outputs):
            plan = plans[index]
            candidates = _as_candidates(output, f"TTA pass {index} ({plan.label})")
            candidates = apply_pass_rules(spec, candidates, plan.target_hw)
            boxes, landmarks = plan.transform.to_original(candidates[0], candidates[2])
            collected.append(filter_candidates(plan, boxes, candidates[1], landmarks))

    with_landmarks = {c[2] is not None for c in collected}
    if len(with_landmarks) > 1:
        raise ValueError("run_pass returned landmarks for some passes and None for others")
    boxes = np.concatenate([c[0] for c in collected]).astype(np.float32)
    scores = np.concatenate([c[1] for c in collected]).astype(np.float32)
    landmarks = np.concatenate([c[2] for c in collected]).astype(np.float32) if with_landmarks == {True} else None
    if spec.union_score_threshold is not None:
        keep = np.flatnonzero(scores > spec.union_score_threshold)
        boxes, scores, landmarks = _select((boxes, scores, landmarks), keep)
    merge = spec.merge
    boxes, scores, landmarks = merge_detections(
        boxes, scores, landmarks, merge.method, merge.iou, merge.singleton, merge.max_detections, merge.pixel_offset
    )
    notes = tuple(plan.note for plan in plans if plan.note)
    return TTAResult(boxes, scores, landmarks, tuple(plans), notes)
