"""The vocabulary of test-time augmentation (TTA) protocols: declarations only, no behaviour.

A :class:`TTASpec` says which passes a protocol runs (a scale rule, flips, per-pass face-size
filters), which rules each pass's candidates go through, and how the passes are merged. It lives
with the model declarations (below :mod:`facescope.inference`) because the catalogue's presets name
the protocols of their published results: the published protocols themselves are declared in the
catalogue, next to the family whose paper uses them (:mod:`facescope.models.catalog.dsfd`: ``s3fd``,
``dsfd``, ``pyramidbox``; :mod:`~facescope.models.catalog.retinaface`: ``retinaface``;
:mod:`~facescope.models.catalog.shf`: ``shf`` and its FDDB/AFW/PASCAL pyramids) and registered with
:func:`facescope.models.registry.register_tta_protocol`. This module declares the two user-level
protocols (``flip``, ``multiscale``) and :func:`single_pass_protocol`, the detector's own single
pass written as a protocol of one pass. Planning passes and running them is
:mod:`facescope.inference.tta_transforms` and :mod:`facescope.inference.tta`.

Every number of a published protocol cites ``../shared/reference/dsfd_asfd_shf_eval.md`` (written
``ref:LINE``); where the reference is silent, the comment says what the value rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

import numpy as np

from facescope.ops.voting import SINGLETON_POLICIES, SingletonPolicy

REFERENCE = "../shared/reference/dsfd_asfd_shf_eval.md"


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


@dataclass(frozen=True)
class PresetResize:
    """One pass resized exactly as the preset's :class:`~facescope.models.spec.ResizeSpec` says
    (letterbox or original size): the detector's single pass. Not capped by the TTA pixel budget
    (the preset's size is checked against the memory budget instead)."""


ScaleRule = Union[Factors, ShortSidePyramid, ShrinkRule, PresetResize]


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
        scales: the scale rule (:class:`Factors`, :class:`ShortSidePyramid`, :class:`ShrinkRule`
            or :class:`PresetResize`).
        flip: with ``Factors``/``ShortSidePyramid``, every scale also runs mirrored; with a
            ``ShrinkRule``, only the base ``shrink`` pass does (``det1``, ref:530), as in the sources.
        merge: the one merge over all passes; None pools the passes' candidates by descending score
            without merging them (the single pass, whose per-pass NMS is the preset's).
        flip_pixel_offset: ``x' = W - offset - x`` convention of the mirror (see
            :class:`~facescope.inference.tta_transforms.PassTransform`).
        pass_score_threshold: per-pass candidate threshold (``score >= t``) the protocol prescribes,
            or None to keep the detector's own.
        pass_top_k: per-pass cap on candidates by score (None: the detector's own ``pre_nms_top_k``).
        pass_nms_iou: per-pass greedy NMS before the merge (DSFD's ``Detect``), or None.
        pass_nms_pixel_offset: area convention of that NMS (0: continuous, 1: "+1" widths).
        pass_clip: clip each pass's boxes to its image, ``[0, w] x [0, h]`` in pass pixels (SHF).
        union_score_threshold: threshold (``score > t``) on the union of all passes before the merge.
        source: where the protocol is written down.
    """

    name: str
    scales: ScaleRule
    flip: bool
    merge: MergeSpec | None
    flip_pixel_offset: float = 0.0
    pass_score_threshold: float | None = None
    pass_top_k: int | None = None
    pass_nms_iou: float | None = None
    pass_nms_pixel_offset: float = 0.0
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
        if isinstance(self.scales, PresetResize) and self.flip:
            raise ValueError("a PresetResize protocol is the single pass: it cannot flip")


#: The name that asks for the single pass, e.g. to switch off a preset's protocol.
NO_TTA = "none"


def single_pass_protocol(nms_iou: float, nms_pixel_offset: float) -> TTASpec:
    """The detector's single pass as a protocol of one pass: the preset's resize, its candidates
    (score threshold, pre-NMS top-k), then its NMS (``nms_iou``, ``nms_pixel_offset`` of the preset's
    :class:`~facescope.models.spec.PostprocessSettings`) in the pass's pixels; nothing to merge."""
    return TTASpec(
        name=NO_TTA,
        scales=PresetResize(),
        flip=False,
        merge=None,
        pass_nms_iou=nms_iou,
        pass_nms_pixel_offset=nms_pixel_offset,
        source="facescope: the preset's single pass",
    )


#: The user-level protocols (not from a paper); the published ones are declared in the catalogue.
USER_PROTOCOLS: tuple[TTASpec, ...] = (
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
)
