"""Box geometry and non-maximum suppression on ``Tensor[N, 4]`` x1, y1, x2, y2 boxes."""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, pixel_offset: float = 0.0) -> Tensor:
    """Greedy NMS; returns the kept indices sorted by decreasing score.

    A box is suppressed when its IoU with a kept, higher-scoring box is greater than
    ``iou_threshold``.

    Args:
        boxes: ``Tensor[N, 4]`` x1, y1, x2, y2.
        scores: ``Tensor[N]``.
        iou_threshold: suppression threshold.
        pixel_offset: ``1.0`` reproduces the "+1 pixel" area convention of the official
            insightface and Pytorch_Retinaface NMS (``area = (x2 - x1 + 1) * (y2 - y1 + 1)``);
            ``0.0`` is the continuous convention of torchvision and mmcv.

    Returns:
        ``Tensor[K]`` int64 indices into ``boxes``.

    Boxes with exactly equal scores are visited in index order (a stable sort), so the result is
    deterministic; torchvision's own sort leaves the order of ties unspecified.
    """
    if pixel_offset:
        # IoU under the +1 convention equals the continuous IoU of boxes grown by one pixel.
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:] + pixel_offset], dim=1)
    order = torch.sort(scores, descending=True, stable=True).indices
    # Strictly decreasing stand-in scores make torchvision visit the boxes in exactly this order.
    ranks = torch.arange(order.numel(), 0, -1, device=boxes.device, dtype=boxes.dtype)
    return order[torchvision.ops.nms(boxes[order], ranks, iou_threshold)]


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU, ``Tensor[N, 4] x Tensor[M, 4] -> Tensor[N, M]``."""
    return torchvision.ops.box_iou(boxes1, boxes2)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clamp ``Tensor[..., 4]`` boxes to ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def box_centers(boxes: Tensor) -> Tensor:
    """``Tensor[N, 4]`` boxes -> ``Tensor[N, 2]`` centres."""
    return (boxes[:, :2] + boxes[:, 2:]) * 0.5
