"""The geometry of test-time-augmentation passes and the planner that lists them.

:func:`plan_passes` turns a :class:`~facescope.models.tta_specs.TTASpec` and an image size into
:class:`PassPlan` s: for each pass, the size the image is resized to, whether it is flipped, the
face-size filter its detections go through, and the exact map between original and pass pixels:
a :class:`PassTransform` (resize then mirror) for the protocols' scales, a :class:`ResizeTransform`
(the preset's letterbox or original size) for :class:`~facescope.models.tta_specs.PresetResize`, the
detector's single pass. Passes too large for the pixel budget are capped and carry a ``note``.
numpy and OpenCV only; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Union

import cv2
import numpy as np

from facescope.inference.preprocess import ResizePlan, apply_resize, plan_resize, unscale
from facescope.models.spec import InputSpec, ResizeSpec
from facescope.models.tta_specs import (
    BIG_FACES,
    SMALL_FACES,
    Factors,
    PresetResize,
    ShortSidePyramid,
    ShrinkRule,
    SizeFilter,
    TTASpec,
)
from facescope.structures import mirror_faces

#: Default pixel budget of one pass: 16 MP (e.g. 4618 x 3464). The largest pass any published protocol
#: plans, on any image size, is DSFD's ``max_shrink`` pass, which its formula keeps at or below
#: 2**31 / 200 ~ 10.7 MP (ref:526; S3FD's keeps 3.7 MP, RetinaFace's pyramid 4.3 MP, SHF's 2.9 MP), so
#: the cap never changes a published result; past it, activations of the large backbones (ResNet-152
#: DSFD: 64-256 float channels at strides 2-4, about 1 GB per such map at 16 MP) run into GBs per pass.
DEFAULT_MAX_PASS_PIXELS = 16_000_000


# --------------------------------------------------------------------------------------------------
# Geometry of one pass
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassTransform:
    """The exact map between original-image pixels and the pixels of one pass's input.

    Original to pass: ``u = x * scale_x + offset_x`` (likewise y), then, when ``flipped``,
    ``u' = flip_width - flip_pixel_offset - u`` with ``x1``/``x2`` swapped and left/right landmarks
    swapped (:func:`facescope.structures.mirror_faces`). The flip happens in pass pixels,
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
        return mirror_faces(boxes, landmarks, self.flip_width - self.flip_pixel_offset)

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


@dataclass(frozen=True)
class ResizeTransform:
    """The preset's own resize as the geometry of a pass: the detector's single pass.

    The content is resized as :func:`~facescope.inference.preprocess.plan_resize` decides (letterbox
    or original size) and placed at the top-left of a ``plan.input_hw`` network input; detections map
    back by the float32 division of :func:`~facescope.inference.preprocess.unscale`.
    """

    plan: ResizePlan

    @property
    def output_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the pass image :meth:`forward_image` produces."""
        return self.plan.content_hw

    def forward_image(self, image: np.ndarray) -> np.ndarray:
        """The resized content (bilinear), ``H x W x C`` in, same dtype out."""
        return apply_resize(image, self.plan).image

    def to_original(self, boxes: np.ndarray, landmarks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Input pixels -> original pixels (``float32 [K, 4]``, ``[K, 5, 2]`` or None)."""
        points = None if landmarks is None else np.asarray(landmarks, np.float32)
        return unscale(np.asarray(boxes, np.float32), points, self.plan.scale_xy)


PassGeometry = Union[PassTransform, ResizeTransform]


@dataclass(frozen=True)
class PassPlan:
    """One planned pass.

    Attributes:
        label: what the pass is in its source (``"det0"``, ``"det_b"``, ``"pyramid"``, ...).
        scale: nominal original-to-pass factor (after any budget cap).
        target_hw: ``(height, width)`` of the pass image.
        flipped: whether the pass image is mirrored.
        size_filter: faces kept from this pass (in original pixels), or None for all.
        transform: the exact geometry, see :class:`PassTransform` and :class:`ResizeTransform`.
        note: set when the pixel budget changed the pass, for the caller to show.
    """

    label: str
    scale: float
    target_hw: tuple[int, int]
    flipped: bool
    size_filter: SizeFilter | None
    transform: PassGeometry
    note: str | None = None


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


def _truncate_2_decimals(value: float) -> float:
    """Cut (not round) to two decimals, as PyramidBox's ``get_round`` does on ``str(value)`` (ref:527)."""
    from decimal import ROUND_DOWN, Decimal  # here: only the S3FD-style shrink rules need it

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
    else:  # pragma: no cover - plan_passes plans PresetResize itself; the Union is closed
        raise TypeError(f"unknown scale rule {rule!r}")
    for scale, size_filter in zip(scales, filters):
        planned.append((label, scale, False, size_filter))
        if spec.flip:  # the mirrored pass right after its scale: same size, batchable
            planned.append((label, scale, True, size_filter))
    return planned


def preset_pass(image_hw: tuple[int, int], resize: ResizeSpec, input_spec: InputSpec, model: str | None = None) -> PassPlan:
    """The one pass of :class:`~facescope.models.tta_specs.PresetResize`: the preset's resize (an
    original-size input is checked against the memory budget with ``model``'s estimate)."""
    plan = plan_resize(image_hw, resize, input_spec, model)
    return PassPlan("preset", plan.scale_xy[1], plan.content_hw, False, None, ResizeTransform(plan))


def plan_passes(
    spec: TTASpec,
    image_hw: tuple[int, int],
    *,
    detector_scale: float = 1.0,
    max_pixels: int = DEFAULT_MAX_PASS_PIXELS,
    resize: ResizeSpec | None = None,
    input_spec: InputSpec | None = None,
    model: str | None = None,
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
        resize, input_spec: the preset's resize and the model's input spec, which the
            :class:`~facescope.models.tta_specs.PresetResize` rule (the single pass) needs.
        model: registry name whose memory estimate checks that pass at the original size.

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
    if isinstance(spec.scales, PresetResize):
        if resize is None or input_spec is None:
            raise ValueError(f"protocol '{spec.name}' runs the preset's resize: give resize= and input_spec=")
        return [preset_pass(image_hw, resize, input_spec, model)]
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
