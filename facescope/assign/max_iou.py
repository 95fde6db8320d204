"""Max-IoU assignment of anchors to ground-truth boxes (SSD / RetinaFace / Faster R-CNN RPN).

Every anchor takes the ground truth it overlaps most. It is positive when that IoU reaches
``pos_iou``, background below ``neg_iou``, ignored in between. Optionally each ground truth whose
best anchor overlaps it by at least ``force_match_min_iou`` makes that anchor positive, so small
faces get at least one anchor. Faces flagged ``ignore`` make no positives; negatives that overlap
one of them by ``neg_iou`` or more are ignored instead.

Pytorch_Retinaface (``utils/box_utils.py`` ``match``) is ``pos_iou = neg_iou = 0.35``,
``force_match_min_iou = 0.2`` and ``retarget_below_floor = True``; the paper is ``pos_iou = 0.5``,
``neg_iou = 0.3`` (in between ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from facescope.assign.labels import IGNORE, NEGATIVE, POSITIVE, Assignment, background, ignore_negatives, split_ignored
from facescope.ops.boxes import box_iou

if TYPE_CHECKING:  # pragma: no cover
    from facescope.ops.anchors import Priors

__all__ = ["IGNORE", "NEGATIVE", "POSITIVE", "MaxIoUAssigner", "assign_max_iou"]


@dataclass(frozen=True)
class MaxIoUAssigner:
    """:func:`assign_max_iou` with fixed thresholds, as an :class:`~facescope.assign.labels.Assigner`."""

    pos_iou: float
    neg_iou: float | None = None
    force_match_min_iou: float | None = None
    retarget_below_floor: bool = False

    def __call__(self, priors: Priors, gt_boxes: Tensor, ignore: Tensor | None = None) -> Assignment:
        """Assign the priors' boxes to ``Tensor[M, 4]`` faces."""
        anchors = priors.boxes()
        return assign_max_iou(
            anchors,
            gt_boxes.to(anchors.dtype),
            self.pos_iou,
            self.neg_iou,
            self.force_match_min_iou,
            self.retarget_below_floor,
            ignore,
        )


def assign_max_iou(
    anchors: Tensor,
    gt_boxes: Tensor,
    pos_iou: float,
    neg_iou: float | None = None,
    force_match_min_iou: float | None = None,
    retarget_below_floor: bool = False,
    ignore: Tensor | None = None,
) -> Assignment:
    """Assign ``Tensor[N, 4]`` anchors to ``Tensor[M, 4]`` ground-truth boxes (x1, y1, x2, y2).

    Args:
        anchors: anchor boxes.
        gt_boxes: ground-truth boxes (``M`` may be 0: everything is background).
        pos_iou: positive when the best IoU is ``>= pos_iou``.
        neg_iou: background when the best IoU is ``< neg_iou`` (default ``pos_iou``: nothing ignored).
        force_match_min_iou: if set, the best anchor of every ground truth whose best IoU is
            ``>= force_match_min_iou`` is positive for it (IoU set to 2, later ground truths win).
            When no ground truth reaches the floor, the image is all background (as the port).
        retarget_below_floor: Pytorch_Retinaface quirk: the best anchor of a ground truth *below*
            the floor is also pointed at that ground truth (it is not made positive, but if it is
            positive through another face it regresses to this one).
        ignore: ``Tensor[M]`` bool; flagged faces are left out of the matching, and the negatives
            overlapping one of them by ``>= neg_iou`` become :data:`IGNORE`.

    Returns:
        :class:`~facescope.assign.labels.Assignment` of ``[N]``.
    """
    neg_iou = pos_iou if neg_iou is None else neg_iou
    if neg_iou > pos_iou:
        raise ValueError(f"neg_iou ({neg_iou}) must not exceed pos_iou ({pos_iou})")
    kept, ignored_boxes = split_ignored(gt_boxes, ignore)
    if kept is None or ignored_boxes is None:
        return _assign(anchors, gt_boxes, pos_iou, neg_iou, force_match_min_iou, retarget_below_floor)
    assignment = _assign(anchors, gt_boxes[kept], pos_iou, neg_iou, force_match_min_iou, retarget_below_floor)
    near_ignored = box_iou(anchors, ignored_boxes).max(dim=1).values >= neg_iou
    return ignore_negatives(assignment.with_faces(kept), near_ignored)


def _assign(
    anchors: Tensor,
    gt_boxes: Tensor,
    pos_iou: float,
    neg_iou: float,
    force_match_min_iou: float | None,
    retarget_below_floor: bool,
) -> Assignment:
    num_anchors = anchors.shape[0]
    if gt_boxes.shape[0] == 0:
        return background(num_anchors, anchors.device, anchors.dtype)
    overlaps = box_iou(gt_boxes, anchors)  # [M, N]
    best_anchor_iou, best_anchor_idx = overlaps.max(dim=1)  # per ground truth
    max_ious, gt_indices = overlaps.max(dim=0)  # per anchor
    if force_match_min_iou is not None:
        valid = best_anchor_iou >= force_match_min_iou
        if not bool(valid.any()):
            return background(num_anchors, anchors.device, anchors.dtype)
        max_ious = max_ious.index_fill(0, best_anchor_idx[valid], 2.0)
        gt_order = torch.arange(gt_boxes.shape[0], device=anchors.device)
        forced = gt_order if retarget_below_floor else gt_order[valid]
        gt_indices = _last_writer_wins(gt_indices, best_anchor_idx[forced], forced)
    labels = torch.full((num_anchors,), IGNORE, dtype=torch.int64, device=anchors.device)
    labels[max_ious < neg_iou] = NEGATIVE
    labels[max_ious >= pos_iou] = POSITIVE
    return Assignment(labels, gt_indices, max_ious)


def _last_writer_wins(gt_indices: Tensor, anchor_idx: Tensor, gt_idx: Tensor) -> Tensor:
    """``gt_indices[anchor_idx[j]] = gt_idx[j]`` for j in order (a later j overwrites an earlier one)."""
    latest = torch.full_like(gt_indices, -1)
    latest = latest.scatter_reduce(0, anchor_idx, gt_idx, reduce="amax")
    return torch.where(latest >= 0, latest, gt_indices)
