"""Adaptive Training Sample Selection (Zhang et al., CVPR 2020) as configured by SCRFD (mode 0)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from facescope.ops.boxes import box_centers, box_iou

NEGATIVE = -1


@torch.no_grad()
def atss_assign(anchors: Tensor, num_per_level: Sequence[int], gt_boxes: Tensor, topk: int = 9) -> Tensor:
    """Assign each anchor to a ground-truth face or to the background.

    1. On each level take, per face, the ``topk`` anchors whose centres are closest to the face centre.
    2. Their IoUs with the face give a threshold ``mean + std`` (unbiased std); candidates with
       ``IoU >= threshold`` whose centre is inside the face by more than ``0.001 * sqrt(area)``
       (SCRFD's mode 0) are positive.
    3. An anchor claimed by several faces goes to the one with the highest IoU.

    Args:
        anchors: ``Tensor[N, 4]`` anchor boxes, levels concatenated.
        num_per_level: anchors on each level (sums to N).
        gt_boxes: ``Tensor[M, 4]`` faces.
        topk: candidates per level and face.

    Returns:
        ``Tensor[N]`` int64: the matched face index, or -1 for background.
    """
    num_anchors, num_gt = anchors.shape[0], gt_boxes.shape[0]
    assigned = torch.full((num_anchors,), NEGATIVE, dtype=torch.long, device=anchors.device)
    if num_gt == 0 or num_anchors == 0:
        return assigned
    ious = box_iou(anchors, gt_boxes)  # [N, M]
    anchor_centers = box_centers(anchors)
    distances = torch.cdist(anchor_centers, box_centers(gt_boxes))  # [N, M]
    candidate_idxs = _closest_per_level(distances, num_per_level, topk)  # [K, M]
    candidate_ious = ious.gather(0, candidate_idxs)  # [K, M]
    threshold = candidate_ious.mean(0) + candidate_ious.std(0)
    is_positive = (candidate_ious >= threshold[None, :]) & _centre_inside(anchor_centers, candidate_idxs, gt_boxes)
    masked_ious = torch.full_like(ious, -1.0)
    gt_columns = torch.arange(num_gt, device=anchors.device).expand_as(candidate_idxs)
    masked_ious[candidate_idxs[is_positive], gt_columns[is_positive]] = ious[candidate_idxs[is_positive], gt_columns[is_positive]]
    best_iou, best_gt = masked_ious.max(dim=1)
    positive = best_iou >= 0
    assigned[positive] = best_gt[positive]
    return assigned


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
