"""Landmark regression loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def weighted_smooth_l1(pred: Tensor, target: Tensor, weight: Tensor, beta: float = 1.0 / 9.0) -> Tensor:
    """Sum of ``weight * SmoothL1(pred - target)`` with mmdet's definition
    (``0.5 x^2 / beta`` below ``beta``, ``|x| - beta / 2`` above).

    Args:
        pred, target: ``Tensor[N, D]``.
        weight: broadcastable to ``[N, D]``.
    """
    return (F.smooth_l1_loss(pred, target, reduction="none", beta=beta) * weight).sum()
