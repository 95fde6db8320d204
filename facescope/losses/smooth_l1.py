"""Smooth-L1 (Huber with slope 1) regression loss, summed, with optional per-element weights."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def smooth_l1_sum(pred: Tensor, target: Tensor, beta: float = 1.0, weight: Tensor | None = None) -> Tensor:
    """``sum(w * smoothL1(pred - target))`` over all elements.

    ``smoothL1(d) = 0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta`` (Fast R-CNN, beta 1).

    Args:
        pred, target: ``Tensor[..., K]`` of the same shape.
        beta: the transition point.
        weight: ``Tensor[..., K]`` (broadcastable) element weights, e.g. 0 for unannotated landmarks.

    Returns:
        Scalar tensor (0 for empty inputs, still attached to ``pred``'s graph).
    """
    losses = F.smooth_l1_loss(pred, target, reduction="none", beta=beta)
    if weight is not None:
        losses = losses * weight
    return losses.sum()
