"""IoU-based box losses."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import distance_box_iou_loss


def aligned_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of corresponding rows: ``Tensor[N, 4] x Tensor[N, 4] -> Tensor[N]``."""
    left_top = torch.max(boxes1[:, :2], boxes2[:, :2])
    right_bottom = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    overlap = (right_bottom - left_top).clamp(min=0).prod(dim=1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(dim=1)
    return overlap / (area1 + area2 - overlap).clamp(min=eps)


def diou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Distance-IoU loss per row, ``1 - IoU + rho^2 / c^2`` (torchvision), ``Tensor[N]``."""
    if pred.numel() == 0:
        return pred.sum(dim=1) * 0
    return distance_box_iou_loss(pred, target, reduction="none", eps=eps)
