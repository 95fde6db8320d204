"""Quality Focal Loss (Generalized Focal Loss, Li et al. 2020) for a single sigmoid class."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def quality_focal_loss(logits: Tensor, quality: Tensor, beta: float = 2.0) -> Tensor:
    """Per-prediction QFL: ``BCE(logit, q) * |q - sigmoid(logit)| ** beta``.

    Args:
        logits: ``Tensor[N]`` classification logits.
        quality: ``Tensor[N]`` soft targets in [0, 1] (IoU for positives, 0 for negatives).
        beta: modulating exponent.

    Returns:
        ``Tensor[N]`` unreduced losses.
    """
    modulating = (quality - logits.sigmoid()).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(logits, quality, reduction="none") * modulating
