"""The one inference driver: every detection, single pass or test-time augmentation (TTA), runs here.

A protocol is a :class:`~facescope.models.tta_specs.TTASpec`; the detector's single pass is the
protocol of one pass (:func:`~facescope.models.tta_specs.single_pass_protocol`: the preset's resize,
the preset's NMS per pass, nothing to merge). Three modules share the work:

* :mod:`facescope.models.tta_specs`: the declarations (scale rules, size filters, merges); the
  published protocols are declared in the catalogue next to their family, and
  :data:`~facescope.models.registry.TTA_PROTOCOLS` names them all;
* :mod:`facescope.inference.tta_transforms`: the geometry of a pass and the planner
  (:func:`~facescope.inference.tta_transforms.plan_passes`);
* this module: running the passes and merging them (:func:`run_plans`, :func:`run_tta`).

How :func:`run_plans` runs the plans of some images (``Detector.detect``, ``facescope detect --tta``)
----------------------------------------------------------------------------------------------------
1. The passes of all images, image by image in plan order, are cut into batches: consecutive passes
   whose network inputs have the same size (a scale and its mirror; the single passes of letterboxed
   images), at most ``max_batch`` at a time. ``transform.forward_image`` gives each pass image; the
   caller's ``run_batch`` runs the backend on a batch and returns each pass's candidates (score
   threshold, decode, pre-NMS top-k) in that pass image's pixels, as numpy or torch arrays.
2. The protocol's per-pass rules (:func:`apply_pass_rules`: clip, score threshold, top-k, NMS) run in
   the candidates' own array kind (on the torch backend's device), then ``transform.to_original`` maps
   them back to the original image and the pass's size filter (the "big"/"small" rules of
   S3FD/DSFD/PyramidBox) keeps the faces that pass may see.
3. Per image, the candidates of every pass are concatenated, optionally thresholded once more (SHF),
   and merged once: greedy NMS or box voting (:mod:`facescope.ops.voting`) with the protocol's IoU,
   singleton policy and cap, or, with no merge (the single pass), sorted by score. The result is the
   data contract in numpy: boxes ``[N, 4]``, scores ``[N]`` (descending), landmarks ``[N, 5, 2]`` or None.

:func:`run_tta` is the same driver for one image with the backend given as a plain callable. This
module, its two companions, :mod:`facescope.ops.voting` and :mod:`facescope.ops.nms` import no torch
(torch candidates are handled through the tensors' own methods).

The names that lived here before the split are re-exported, so ``from facescope.inference.tta import
TTASpec, plan_passes, get_tta_protocol`` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import numpy as np

from facescope.errors import UnknownTTAProtocolError
from facescope.inference.postprocess import nms_index, nonzero_index, stable_descending
from facescope.inference.tta_transforms import (
    DEFAULT_MAX_PASS_PIXELS,
    PassGeometry,
    PassPlan,
    PassTransform,
    ResizeTransform,
    max_shrink,
    plan_passes,
    preset_pass,
    pyramid_base_scale,
)
from facescope.models.registry import TTA_PROTOCOLS, get_tta_protocol, register_tta_protocol, resolve_tta
from facescope.models.spec import PostprocessSettings
from facescope.models.tta_specs import (
    BIG_FACES,
    NO_TTA,
    SMALL_FACES,
    Factors,
    MergeSpec,
    PresetResize,
    ScaleRule,
    ShortSidePyramid,
    ShrinkRule,
    SizeFilter,
    TTASpec,
    single_pass_protocol,
)
from facescope.ops.voting import merge_detections
from facescope.structures import to_numpy

__all__ = [
    "BIG_FACES", "DEFAULT_MAX_PASS_PIXELS", "NO_TTA", "SMALL_FACES", "TTA_PROTOCOLS", "Candidates", "Factors",
    "MergeSpec", "PassGeometry", "PassPlan", "PassTransform", "PresetResize", "ResizeTransform", "ScaleRule",
    "ShortSidePyramid", "ShrinkRule", "SizeFilter", "TTAResult", "TTASpec", "UnknownTTAProtocolError",
    "apply_pass_rules", "filter_candidates", "get_tta_protocol", "max_shrink", "pass_settings", "plan_passes", "preset_pass",
    "pyramid_base_scale", "register_tta_protocol", "resolve_tta", "run_plans", "run_tta", "single_pass_protocol",
]  # fmt: skip

Candidates = tuple[Any, Any, Union[Any, None]]
"""``(boxes float [K, 4], scores float [K], landmarks float [K, 5, 2] or None)``, numpy (or torch
tensors before the per-pass rules)."""

RunPass = Callable[[np.ndarray], Candidates]
RunBatch = Callable[[list[np.ndarray]], Sequence[Candidates]]
RunPlannedBatch = Callable[[list[np.ndarray], list[PassPlan]], Sequence[Candidates]]
Progress = Callable[[int, int, PassPlan], None]


@dataclass(frozen=True)
class TTAResult:
    """Merged detections of all passes of one image, in original pixels.

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
    """Check the shapes of one pass's output; anything but torch tensors becomes float32 numpy."""
    boxes, scores, landmarks = output
    if not hasattr(boxes, "detach"):  # torch tensors stay on their device for the per-pass rules
        boxes = np.asarray(boxes, np.float32)
        boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
        scores = np.asarray(scores, np.float32).reshape(-1)
        landmarks = None if landmarks is None else np.asarray(landmarks, np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or tuple(scores.shape) != (boxes.shape[0],):
        raise ValueError(
            f"{where}: expected boxes [K, 4] and scores [K], got {list(boxes.shape)} and {list(scores.shape)}"
        )
    if landmarks is not None and tuple(landmarks.shape) != (boxes.shape[0], 5, 2):
        raise ValueError(f"{where}: expected landmarks [{boxes.shape[0]}, 5, 2], got {list(landmarks.shape)}")
    return boxes, scores, landmarks


def _select(candidates: Candidates, index: Any) -> Candidates:
    boxes, scores, landmarks = candidates
    return boxes[index], scores[index], None if landmarks is None else landmarks[index]


def pass_settings(spec: TTASpec, post: PostprocessSettings) -> PostprocessSettings:
    """The candidate settings of a pass: the preset's, with the protocol's per-pass score threshold
    (``>=``) and top-k where it prescribes them."""
    if spec.pass_score_threshold is not None:
        post = replace(post, score_thresh=spec.pass_score_threshold, strict_score=False)
    if spec.pass_top_k is not None:  # the protocol's per-pass cap replaces the preset's (e.g. SHF's 10,000)
        post = replace(post, pre_nms_top_k=spec.pass_top_k)
    return post


def _clip(boxes: Any, pass_hw: tuple[int, int]) -> Any:
    """Boxes clipped to ``[0, w] x [0, h]``, numpy or torch."""
    height, width = pass_hw
    if isinstance(boxes, np.ndarray):
        columns = [np.clip(boxes[:, i], 0, limit) for i, limit in enumerate((width, height, width, height))]
        return np.stack(columns, axis=1).astype(boxes.dtype)
    from facescope.ops.boxes import clip_boxes  # torch candidates: the torch backend is loaded already

    return clip_boxes(boxes, height, width)


def apply_pass_rules(spec: TTASpec, candidates: Candidates, pass_hw: tuple[int, int]) -> Candidates:
    """The protocol's per-pass rules, in the pixels of a ``pass_hw`` pass image: clipping,
    ``score >= pass_score_threshold``, the ``pass_top_k`` best, then greedy NMS at ``pass_nms_iou``
    with ``pass_nms_pixel_offset``. numpy or torch candidates (the result is of the same kind).
    Idempotent, so it is harmless when the detector's candidates already applied the same rules."""
    boxes, scores, landmarks = candidates
    if spec.pass_clip:
        candidates = (_clip(boxes, pass_hw), scores, landmarks)
    if spec.pass_score_threshold is not None:
        candidates = _select(candidates, nonzero_index(scores >= spec.pass_score_threshold))
    if spec.pass_top_k is not None and candidates[1].shape[0] > spec.pass_top_k:
        candidates = _select(candidates, stable_descending(candidates[1])[: spec.pass_top_k])
    if spec.pass_nms_iou is not None:
        keep = nms_index(candidates[0], candidates[1], spec.pass_nms_iou, spec.pass_nms_pixel_offset)
        candidates = _select(candidates, keep)
    return candidates


def filter_candidates(
    plan: PassPlan, boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None
) -> Candidates:
    """Keep the candidates of one pass (already in original pixels) that its size filter allows."""
    if plan.size_filter is None:
        return boxes, scores, landmarks
    keep = plan.size_filter.mask(boxes)
    return boxes[keep], scores[keep], None if landmarks is None else landmarks[keep]


def _batches(jobs: list[tuple[int, int, PassPlan]], key: Callable[[PassPlan], Hashable], max_batch: int | None) -> list[list[int]]:
    """Indices of ``jobs`` cut into runs of consecutive equal ``key``, at most ``max_batch`` long."""
    batches: list[list[int]] = []
    last: Hashable = None
    for index, (_, _, plan) in enumerate(jobs):
        current = key(plan)
        if batches and current == last and (max_batch is None or len(batches[-1]) < max_batch):
            batches[-1].append(index)
        else:
            batches.append([index])
        last = current
    return batches


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The passes' arrays as one float32 array; a single pass's float32 array is used as it is (no copy)."""
    joined = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return joined.astype(np.float32, copy=False)


def _merge(spec: TTASpec, collected: list[Candidates], plans: Sequence[PassPlan]) -> TTAResult:
    """Step 3 of the module docstring for one image."""
    with_landmarks = {c[2] is not None for c in collected}
    if len(with_landmarks) > 1:
        raise ValueError("the passes returned landmarks for some passes and None for others")
    boxes = _joined([c[0] for c in collected])
    scores = _joined([c[1] for c in collected])
    landmarks = _joined([c[2] for c in collected]) if with_landmarks == {True} else None  # type: ignore[misc]
    if spec.union_score_threshold is not None:
        boxes, scores, landmarks = _select((boxes, scores, landmarks), np.flatnonzero(scores > spec.union_score_threshold))
    merge = spec.merge
    if merge is None:  # pooled only: already reduced per pass (the single pass's NMS)
        boxes, scores, landmarks = _select((boxes, scores, landmarks), stable_descending(scores))
    else:
        boxes, scores, landmarks = merge_detections(
            boxes, scores, landmarks, merge.method, merge.iou, merge.singleton, merge.max_detections, merge.pixel_offset
        )
    notes = tuple(plan.note for plan in plans if plan.note)
    return TTAResult(boxes, scores, landmarks, tuple(plans), notes)


def run_plans(
    spec: TTASpec,
    images: Sequence[np.ndarray],
    plans: Sequence[Sequence[PassPlan]],
    run_batch: RunPlannedBatch,
    *,
    batch_key: Callable[[PassPlan], Hashable] = lambda plan: plan.target_hw,
    max_batch: int | None = None,
    progress: Progress | None = None,
) -> list[TTAResult]:
    """Run the planned passes of every image and merge each image's passes (the module docstring has the flow).

    Args:
        spec: the protocol (its per-pass rules, union threshold and merge).
        images: ``H x W x 3`` uint8 BGR images (any arrays ``forward_image`` can resize).
        plans: per image, its passes (:func:`~facescope.inference.tta_transforms.plan_passes`).
        run_batch: ``(pass images, their plans)`` -> per pass image ``(boxes [K, 4], scores [K],
            landmarks [K, 5, 2] or None)`` in that image's pixels (numpy or torch). The images of one
            call share ``batch_key``.
        batch_key: passes batch together only when this is equal (default: the pass image size).
        max_batch: most pass images per ``run_batch`` call (None: no limit).
        progress: called as ``progress(index, total, plan)`` before each batch, ``index`` counting
            the passes of all images.

    Returns:
        One :class:`TTAResult` per image, in original pixels.
    """
    if len(images) != len(plans):
        raise ValueError(f"{len(images)} images but {len(plans)} plans")
    jobs = [(image, index, plan) for image, image_plans in enumerate(plans) for index, plan in enumerate(image_plans)]
    collected: list[list[Candidates]] = [[] for _ in images]
    for batch in _batches(jobs, batch_key, max_batch):
        members = [jobs[i] for i in batch]
        if progress is not None:
            progress(batch[0], len(jobs), members[0][2])
        pass_images = [plan.transform.forward_image(images[image]) for image, _, plan in members]
        outputs = list(run_batch(pass_images, [plan for _, _, plan in members]))
        if len(outputs) != len(members):
            raise ValueError(f"run_batch returned {len(outputs)} results for {len(members)} images")
        for (image, index, plan), output in zip(members, outputs):
            candidates = _as_candidates(output, f"TTA pass {index} ({plan.label})")
            boxes, scores, landmarks = map(to_numpy, apply_pass_rules(spec, candidates, plan.target_hw))
            boxes, landmarks = plan.transform.to_original(boxes, landmarks)
            collected[image].append(filter_candidates(plan, boxes, scores, landmarks))
    return [_merge(spec, found, image_plans) for found, image_plans in zip(collected, plans)]


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
    """Plan the passes of ``spec`` on one ``image``, run them and merge them (:func:`run_plans`).

    Args:
        spec: the protocol (not :class:`~facescope.models.tta_specs.PresetResize`, which needs a preset).
        image: ``H x W x 3`` uint8 BGR (any array ``forward_image`` can resize).
        run_pass: the detector's single pass: pass image -> ``(boxes [K, 4], scores [K],
            landmarks [K, 5, 2] or None)`` in that pass image's pixels, run at the image's own size.
        run_batch: alternative to ``run_pass``: a list of same-size pass images -> one result each;
            the passes of one size (a scale and its mirror) are then given together.
        detector_scale: see :func:`~facescope.inference.tta_transforms.plan_passes`.
        max_pixels: per-pass pixel budget, see :func:`~facescope.inference.tta_transforms.plan_passes`.
        progress: called as ``progress(index, total, plan)`` before each pass runs (batched passes: per batch).

    Returns:
        A :class:`TTAResult` in original pixels.
    """
    if (run_pass is None) == (run_batch is None):
        raise ValueError("give exactly one of run_pass and run_batch")
    if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be an H x W (x C) array, got shape {list(image.shape)}")
    plans = plan_passes(spec, image.shape[:2], detector_scale=detector_scale, max_pixels=max_pixels)
    if run_pass is not None:
        results = run_plans(spec, [image], [plans], lambda images, _: [run_pass(images[0])], max_batch=1, progress=progress)
    else:
        assert run_batch is not None
        results = run_plans(spec, [image], [plans], lambda images, _: run_batch(images), progress=progress)
    return results[0]
