"""Per-anchor face/background classification losses that a criterion can plug in.

Each takes the head's ``Tensor[B, N, C]`` logits and ``Tensor[B, N]`` int64 labels (1 face,
0 background; the value at an ignored anchor is 0 and its loss is never used) and returns the
unreduced ``Tensor[B, N]`` loss, so the criterion can mine hard negatives and normalise as its
paper does. ``scores`` gives the face probabilities the criterion reports per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class ClassificationLoss(Protocol):
    """A face/background classification loss."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``Tensor[B, N, C]`` logits, ``Tensor[B, N]`` 0/1 labels -> ``Tensor[B, N]`` losses."""
        ...

    def scores(self, logits: Tensor) -> Tensor:
        """``Tensor[B, N, C]`` logits -> ``Tensor[B, N]`` face probabilities."""
        ...


@dataclass(frozen=True)
class SoftmaxCrossEntropy:
    """2-way softmax over (background, face) logits, as SSD / RetinaFace / DSFD."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        # (B, N, C) -> (B*N, C) -> (B, N)
        losses = F.cross_entropy(logits.reshape(-1, num_classes), labels.reshape(-1), reduction="none")
        return losses.reshape(labels.shape)

    def scores(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=-1)[..., 1]


@dataclass(frozen=True)
class SigmoidCrossEntropy:
    """Binary cross-entropy on a single face logit (``C = 1``), for sigmoid heads."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits[..., 0], labels.to(logits.dtype), reduction="none")

    def scores(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits[..., 0])


@dataclass(frozen=True)
class LargeMarginCosine:
    """Large-margin cosine loss (CosFace, Wang et al. 2018): softmax cross-entropy over
    ``scale * (cos_c - margin * [c == label])``.

    The head outputs the cosines between the anchor feature and each class weight (``C = 2``,
    values in [-1, 1]); the margin pushes the true class's cosine above the other's by ``margin``.

    Args:
        scale: the logit scale ``s``.
        margin: the cosine margin ``m``.
    """

    scale: float = 30.0
    margin: float = 0.35

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        margins = F.one_hot(labels, logits.shape[-1]).to(logits.dtype) * self.margin
        return SoftmaxCrossEntropy()(self.scale * (logits - margins), labels)

    def scores(self, logits: Tensor) -> Tensor:
        return torch.softmax(self.scale * logits, dim=-1)[..., 1]
