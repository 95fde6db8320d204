"""Face scores from classification logits: the one place where a head's logits become probabilities.

Every model (its ``scores_from_logits`` / ``activate``), the ONNX export (whose graph computes the same
function) and the criteria's per-image statistics score through :func:`scores_from_logits`, with the
activation and logit scale that the model's registry entry declares
(:class:`~facescope.models.spec.HeadLayout` ``score_activation`` / ``logit_scale``).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The activations a head may declare: one face logit through a sigmoid, or (background, face) through a softmax.
SCORE_ACTIVATIONS = ("sigmoid", "softmax")


def scores_from_logits(cls_logits: Tensor, activation: str, logit_scale: float = 1.0) -> Tensor:
    """``Tensor[..., C]`` logits -> ``Tensor[...]`` face probabilities.

    Args:
        cls_logits: ``C = 1`` face logit (``"sigmoid"``) or ``C = 2`` (background, face) logits (``"softmax"``).
        activation: ``"sigmoid"`` or ``"softmax"``.
        logit_scale: the logits are multiplied by it first: the scale ``s`` of a large-margin cosine head,
            whose outputs are cosines in [-1, 1] and whose training loss is a softmax over ``s * cos``
            (1 = plain logits; then no multiplication is made, so the result is exactly the activation's).

    Example:
        >>> scores_from_logits(torch.tensor([[0.0, 0.0], [0.0, 0.1]]), "softmax", logit_scale=10.0).tolist()
        [0.5, 0.7310585975646973]
    """
    if activation not in SCORE_ACTIVATIONS:
        raise ValueError(f"unknown score activation {activation!r}; valid: {list(SCORE_ACTIVATIONS)}")
    logits = cls_logits * logit_scale if logit_scale != 1.0 else cls_logits
    if activation == "sigmoid":
        return torch.sigmoid(logits[..., 0])
    return torch.softmax(logits, dim=-1)[..., 1]
