"""Post-processing of dense predictions: per-pass :func:`candidates`, then :func:`merge`.

One algorithm, two array back-ends:

* numpy (the torch-free onnxruntime path): greedy NMS in numpy (:func:`facescope.ops.nms.nms_numpy`);
* torch (the PyTorch path, on any device): torchvision NMS through :func:`facescope.ops.boxes.nms`.

Both visit boxes in the same stable order (decreasing score, ties by index), use the same float32
IoU with the same area convention, and suppress on ``IoU > threshold``; a test checks that they
return the same faces in the same order on real images.

Flow for one image::

    candidates(scores, box_regs, landmark_regs, priors, coder, settings)   # threshold, pre-NMS top-k, decode
        -> Candidates(boxes, scores, landmarks)          # network-input pixels, array type of the inputs
    merge([candidates, ...], settings)                   # NMS over all passes, max_detections
        -> Detections (numpy)

A single forward pass is a list of one :class:`Candidates`; test-time augmentation maps each pass's
candidates back to the image and merges them all. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facescope.models.spec import PostprocessSettings
from facescope.ops.anchors import AnchorGenerator, Priors, _xp
from facescope.ops.coders import BoxCoder
from facescope.ops.nms import nms_numpy
from facescope.ops.voting import merge_detections
from facescope.structures import Detections, to_numpy

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.tta_specs import MergeSpec

Array = Any  # numpy.ndarray or torch.Tensor


@dataclass
class Candidates:
    """Decoded candidate faces of one pass over one image, before NMS (unsorted).

    Attributes:
        boxes: ``[K, 4]`` x1, y1, x2, y2.
        scores: ``[K]``.
        landmarks: ``[K, 5, 2]`` or None.
    """

    boxes: Array
    scores: Array
    landmarks: Array | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: Array) -> Candidates:
        landmarks = self.landmarks[index] if self.landmarks is not None else None
        return Candidates(self.boxes[index], self.scores[index], landmarks)


@dataclass
class Predictions:
    """Activated predictions of a batch over all priors, levels concatenated (numpy or torch).

    Attributes:
        scores: ``[B, N]`` face probabilities.
        box_regs: ``[B, N, 4]`` encoded boxes.
        landmark_regs: ``[B, N, 10]`` or None.
    """

    scores: Array
    box_regs: Array
    landmark_regs: Array | None = None


def stable_descending(scores: Array) -> Array:
    """Indices sorting ``scores`` by decreasing value, ties in index order (numpy or torch)."""
    if isinstance(scores, np.ndarray):
        return np.argsort(-scores, kind="stable")
    import torch

    return torch.sort(scores, descending=True, stable=True).indices


def nonzero_index(mask: Array) -> Array:
    """``bool [K]`` -> the int64 indices of its True entries, in the array kind of ``mask``."""
    return np.flatnonzero(mask) if isinstance(mask, np.ndarray) else mask.nonzero().squeeze(1)


def nms_index(boxes: Array, scores: Array, iou: float, pixel_offset: float) -> Array:
    """Greedy NMS of :mod:`facescope.ops.nms` (numpy) or :func:`facescope.ops.boxes.nms` (torch, on the
    tensors' device): the kept indices by decreasing score, in the array kind of the inputs."""
    if isinstance(boxes, np.ndarray):
        return nms_numpy(boxes, scores, iou, pixel_offset)
    from facescope.ops.boxes import nms  # torch candidates of the torch backend stay on their device

    return nms(boxes, scores, iou, pixel_offset)


def candidates(
    scores: Array,
    box_regs: Array,
    landmark_regs: Array | None,
    priors: Priors,
    coder: BoxCoder,
    settings: PostprocessSettings,
) -> Candidates:
    """Threshold, keep the ``pre_nms_top_k`` best, decode (one image of one pass).

    Only priors passing the score threshold are decoded, so the cost follows the number of
    candidates, not of priors.

    Args:
        scores: ``[N]`` probabilities over the ``N`` priors.
        box_regs: ``[N, 4]`` encoded boxes.
        landmark_regs: ``[N, 10]`` or None.
        priors: the ``N`` priors of the input size, in the same array kind.
        coder: turns encodings into pixels.
        settings: ``score_thresh``, ``strict_score``, ``pre_nms_top_k``.

    Returns:
        :class:`Candidates` in network-input pixels, in prior order (or, after top-k, score order).
    """
    if len(priors) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} predictions but {len(priors)} priors; the input sides must fit the model's strides")
    index = nonzero_index(passes_score(scores, settings))
    if settings.pre_nms_top_k is not None and index.shape[0] > settings.pre_nms_top_k:
        index = index[stable_descending(scores[index])[: settings.pre_nms_top_k]]
    selected = priors.select(index)
    boxes = coder.decode_boxes(selected, box_regs[index])
    landmarks = coder.decode_landmarks(selected, landmark_regs[index]) if landmark_regs is not None else None
    return Candidates(boxes, scores[index], landmarks)


def passes_score(scores: Array, settings: PostprocessSettings) -> Array:
    """Boolean mask of the scores a preset keeps: ``> score_thresh`` when ``strict_score`` (the
    sources that compare strictly), else ``>=``; numpy or torch like ``scores``."""
    return scores > settings.score_thresh if settings.strict_score else scores >= settings.score_thresh


def _concat(parts: Sequence[Array]) -> Array:
    return parts[0] if len(parts) == 1 else _xp(parts[0]).concatenate(list(parts), 0)


def merge(passes: Sequence[Candidates], settings: PostprocessSettings, method: MergeSpec | None = None) -> Detections:
    """Merge the candidates of every pass into the detections of one image.

    Without ``method`` (or with ``method.method == "nms"`` and no other settings): greedy NMS at
    ``settings.nms_thresh`` with ``settings.nms_pixel_offset``, then ``settings.max_detections``.
    With a :class:`~facescope.models.tta_specs.MergeSpec` the spec names the merge: ``"nms"`` at
    ``method.iou`` or ``"box_voting"`` (:func:`facescope.ops.voting.box_voting`: score-weighted
    means of boxes and landmarks, the spec's singleton policy and cap), then
    ``settings.max_detections``. Box voting runs in numpy (torch candidates are moved to the CPU).

    Args:
        passes: candidates in the same pixel frame (all numpy or all torch).
        settings: ``nms_thresh``, ``nms_pixel_offset``, ``max_detections``.
        method: the merge of a test-time augmentation protocol, or None for the preset's NMS.

    Returns:
        :class:`Detections` (numpy, float32) by decreasing score.
    """
    boxes = _concat([p.boxes for p in passes])
    scores = _concat([p.scores for p in passes])
    with_landmarks = all(p.landmarks is not None for p in passes)
    landmarks = _concat([p.landmarks for p in passes]) if with_landmarks else None
    if method is None:
        name, iou, singleton, cap, offset = "nms", settings.nms_thresh, "keep", None, settings.nms_pixel_offset
    else:
        name, iou, singleton, cap, offset = method.method, method.iou, method.singleton, method.max_detections, method.pixel_offset
    if isinstance(boxes, np.ndarray) or name == "box_voting":  # box voting runs in numpy only
        merged = merge_detections(to_numpy(boxes), to_numpy(scores), to_numpy(landmarks), name, iou, singleton, cap, offset)
        return _capped(Detections(*merged), settings.max_detections)
    keep = nms_index(boxes, scores, iou, offset)
    caps = [c for c in (settings.max_detections, cap) if c is not None]
    if caps:
        keep = keep[: min(caps)]
    kept_landmarks = landmarks[keep] if landmarks is not None else None
    return Detections.from_torch(boxes[keep], scores[keep], kept_landmarks)


def _capped(detections: Detections, cap: int | None) -> Detections:
    if cap is None or len(detections.scores) <= cap:
        return detections
    landmarks = detections.landmarks[:cap] if detections.landmarks is not None else None
    return Detections(detections.boxes[:cap], detections.scores[:cap], landmarks)


def postprocess(
    predictions: Predictions | Any,
    input_hw: tuple[int, int],
    anchor_generator: AnchorGenerator,
    coder: BoxCoder,
    settings: PostprocessSettings,
) -> list[Detections]:
    """One pass over a batch: :func:`candidates` then :func:`merge` for every image.

    Args:
        predictions: anything with ``scores [B, N]``, ``box_regs [B, N, 4]``, ``landmark_regs``
            (a :class:`Predictions`, or a model's ``activate`` output).
        input_hw: ``(H, W)`` of the network input.

    Returns:
        One :class:`Detections` per image, in network-input pixels.
    """
    priors = anchor_generator.priors_like(input_hw, predictions.box_regs)
    results = []
    for b in range(predictions.scores.shape[0]):
        landmark_regs = predictions.landmark_regs[b] if predictions.landmark_regs is not None else None
        found = candidates(predictions.scores[b], predictions.box_regs[b], landmark_regs, priors, coder, settings)
        results.append(merge([found], settings))
    return results
