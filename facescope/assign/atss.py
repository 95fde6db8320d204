"""Adaptive Training Sample Selection (Zhang et al., CVPR 2020) as configured by SCRFD (mode 0)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from facescope.assign.labels import POSITIVE, Assignment, background, ignore_negatives, split_ignored
from facescope.ops.boxes import box_centers, box_iou

if TYPE_CHECKING:  # pragma: no cover
    from facescope.ops.anchors import Priors


@dataclass(frozen=True)
class ATSSAssigner:
    """:func:`atss_assign` with a fixed ``topk``, as an :class:`~facescope.assign.labels.Assigner`."""

    topk: int = 9

    def __call__(self, priors: Priors, gt_boxes: Tensor, ignore: Tensor | None = None) -> Assignment:
        """Assign the priors' boxes to ``Tensor[M, 4]`` faces."""
        anchors = priors.boxes()
        return atss_assign(anchors, priors.num_per_level, gt_boxes.to(anchors.dtype), self.topk, ignore)


@torch.no_grad()
def atss_assign(
    anchors: Tensor, num_per_level: Sequence[int], gt_boxes: Tensor, topk: int = 9, ignore: Tensor | None = None
) -> Assignment:
    """Assign each anchor to a ground-truth face or to the background.

    1. On each level take, per face, the ``topk`` anchors whose centres are closest to the face centre.
    2. Their IoUs with the face give a threshold ``mean + std`` (unbiased std); candidates with
       ``IoU >= threshold`` whose centre is inside the face by more than ``0.001 * sqrt(area)``
       (SCRFD's mode 0) are positive.
    3. An anchor claimed by several faces goes to the one with the highest IoU.

    A face flagged in ``ignore`` takes no part in 1-3; every negative whose IoU with it reaches that
    face's own adaptive threshold (step 2, ATSS's boundary between face and background) is ignored.

    Args:
        anchors: ``Tensor[N, 4]`` anchor boxes, levels concatenated.
        num_per_level: anchors on each level (sums to N).
        gt_boxes: ``Tensor[M, 4]`` faces.
        topk: candidates per level and face.
        ignore: ``Tensor[M]`` bool, faces that make no positives.

    Returns:
        :class:`~facescope.assign.labels.Assignment` of ``[N]``; ``gt_indices`` / ``max_ious`` of a
        non-positive anchor are those of the face it overlaps most.
    """
    kept, ignored_boxes = split_ignored(gt_boxes, ignore)
    if kept is None or ignored_boxes is None:
        return _assign(anchors, num_per_level, gt_boxes, topk)
    assignment = _assign(anchors, num_per_level, gt_boxes[kept], topk).with_faces(kept)
    ious, threshold, _ = _candidates(anchors, num_per_level, ignored_boxes, topk)
    near_ignored = (ious >= threshold[None, :]).any(dim=1)
    return ignore_negatives(assignment, near_ignored)


def _assign(anchors: Tensor, num_per_level: Sequence[int], gt_boxes: Tensor, topk: int) -> Assignment:
    num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
    if num_gt == 0 or num_anchors == 0:
        return background(num_anchors, anchors.device, anchors.dtype)
    ious, threshold, candidate_idxs = _candidates(anchors, num_per_level, gt_boxes, topk)
    candidate_ious = ious.gather(0, candidate_idxs)  # [K, M]
    inside = _centre_inside(box_centers(anchors), candidate_idxs, gt_boxes)
    is_positive = (candidate_ious >= threshold[None, :]) & inside
    masked_ious = torch.full_like(ious, -1.0)
    gt_columns = torch.arange(num_gt, device=anchors.device).expand_as(candidate_idxs)
    masked_ious[candidate_idxs[is_positive], gt_columns[is_positive]] = ious[candidate_idxs[is_positive], gt_columns[is_positive]]
    best_iou, best_gt = masked_ious.max(dim=1)
    positive = best_iou >= 0
    max_ious, nearest_gt = ious.max(dim=1)
    labels = positive.long() * POSITIVE  # NEGATIVE is 0
    return Assignment(labels, torch.where(positive, best_gt, nearest_gt), torch.where(positive, best_iou, max_ious))


def _candidates(anchors: Tensor, num_per_level: Sequence[int], gt_boxes: Tensor, topk: int) -> tuple[Tensor, Tensor, Tensor]:
    """IoUs ``[N, M]``, thresholds ``[M]`` and candidate anchor indices ``[K, M]`` (steps 1 and 2)."""
    ious = box_iou(anchors, gt_boxes)  # [N, M]
    distances = torch.cdist(box_centers(anchors), box_centers(gt_boxes))  # [N, M]
    candidate_idxs = _closest_per_level(distances, num_per_level, topk)  # [K, M]
    candidate_ious = ious.gather(0, candidate_idxs)  # [K, M]
    return ious, candidate_ious.mean(0) + candidate_ious.std(0), candidate_idxs


def _closest_per_level(distances: Tensor, num_per_level: Sequence[int], topk: int) -> Tensor:
    """``[N, M]`` distances -> ``[sum_l min(topk, N_l), M]`` anchor indices, closest first per level."""
    candidates, start = [], 0
    for count in num_per_level:
        k = min(topk, count)
        level = distances[start : start + count]
        candidates.append(level.topk(k, dim=0, largest=False).indices + start)
        start += count
    return torch.cat(candidates, dim=0)


def _centre_inside(anchor_centers: Tensor, candidate_idxs: Tensor, gt_boxes: Tensor) -> Tensor:
    """``[K, M]`` True where the candidate's centre lies inside the face by > 0.001 * sqrt(area)."""
    centers = anchor_centers[candidate_idxs]  # [K, M, 2]
    left_top = centers - gt_boxes[None, :, :2]
    right_bottom = gt_boxes[None, :, 2:] - centers
    min_distance = torch.cat([left_top, right_bottom], dim=-1).min(dim=-1).values  # [K, M]
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    return min_distance / areas.clamp(min=1e-4).sqrt()[None, :] > 0.001
