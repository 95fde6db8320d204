"""Max-IoU assignment of anchors to ground-truth boxes (SSD / RetinaFace / Faster R-CNN RPN).

Every anchor takes the ground truth it overlaps most. It is positive when that IoU reaches
``pos_iou``, background below ``neg_iou``, ignored in between. Optionally each ground truth whose
best anchor overlaps it by at least ``force_match_min_iou`` makes that anchor positive, so small
faces get at least one anchor.

Pytorch_Retinaface (``utils/box_utils.py`` ``match``) is ``pos_iou = neg_iou = 0.35``,
``force_match_min_iou = 0.2`` and ``retarget_below_floor = True``; the paper is ``pos_iou = 0.5``,
``neg_iou = 0.3`` (in between ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facescope.ops.boxes import box_iou

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


@dataclass(frozen=True)
class MaxIoUAssignment:
    """Result of :func:`assign_max_iou` for ``N`` anchors.

    Attributes:
        labels: ``Tensor[N]`` int64: 1 positive, 0 background, -1 ignored.
        gt_indices: ``Tensor[N]`` int64 index of the matched ground truth (meaningful where positive;
            0 when there is no ground truth).
        max_ious: ``Tensor[N]`` IoU with that ground truth (2.0 for forced matches, as the port).
    """

    labels: Tensor
    gt_indices: Tensor
    max_ious: Tensor

    @property
    def positive(self) -> Tensor:
        """``Tensor[N]`` bool."""
        return self.labels == POSITIVE

    @property
    def negative(self) -> Tensor:
        """``Tensor[N]`` bool."""
        return self.labels == NEGATIVE


def assign_max_iou(
    anchors: Tensor,
    gt_boxes: Tensor,
    pos_iou: float,
    neg_iou: float | None = None,
    force_match_min_iou: float | None = None,
    retarget_below_floor: bool = False,
) -> MaxIoUAssignment:
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

    Returns:
        :class:`MaxIoUAssignment`.
    """
    num_anchors = anchors.shape[0]
    neg_iou = pos_iou if neg_iou is None else neg_iou
    if neg_iou > pos_iou:
        raise ValueError(f"neg_iou ({neg_iou}) must not exceed pos_iou ({pos_iou})")
    if gt_boxes.shape[0] == 0:
        return _all_background(num_anchors, anchors.device, anchors.dtype)
    overlaps = box_iou(gt_boxes, anchors)  # [M, N]
    best_anchor_iou, best_anchor_idx = overlaps.max(dim=1)  # per ground truth
    max_ious, gt_indices = overlaps.max(dim=0)  # per anchor
    if force_match_min_iou is not None:
        valid = best_anchor_iou >= force_match_min_iou
        if not bool(valid.any()):
            return _all_background(num_anchors, anchors.device, anchors.dtype)
        max_ious = max_ious.index_fill(0, best_anchor_idx[valid], 2.0)
        gt_order = torch.arange(gt_boxes.shape[0], device=anchors.device)
        forced = gt_order if retarget_below_floor else gt_order[valid]
        gt_indices = _last_writer_wins(gt_indices, best_anchor_idx[forced], forced)
    labels = torch.full((num_anchors,), IGNORED, dtype=torch.int64, device=anchors.device)
    labels[max_ious < neg_iou] = NEGATIVE
    labels[max_ious >= pos_iou] = POSITIVE
    return MaxIoUAssignment(labels, gt_indices, max_ious)


def _last_writer_wins(gt_indices: Tensor, anchor_idx: Tensor, gt_idx: Tensor) -> Tensor:
    """``gt_indices[anchor_idx[j]] = gt_idx[j]`` for j in order (a later j overwrites an earlier one)."""
    latest = torch.full_like(gt_indices, -1)
    latest = latest.scatter_reduce(0, anchor_idx, gt_idx, reduce="amax")
    return torch.where(latest >= 0, latest, gt_indices)


def _all_background(num_anchors: int, device: torch.device, dtype: torch.dtype) -> MaxIoUAssignment:
    return MaxIoUAssignment(
        torch.zeros(num_anchors, dtype=torch.int64, device=device),
        torch.zeros(num_anchors, dtype=torch.int64, device=device),
        torch.zeros(num_anchors, dtype=dtype, device=device),
    )
