"""Per-anchor face/background classification losses that a criterion can plug in, chosen by name.

Each takes the head's ``Tensor[B, N, C]`` logits and ``Tensor[B, N]`` int64 labels (1 face,
0 background; the value at an ignored anchor is 0 and its loss is never used) and returns the
unreduced ``Tensor[B, N]`` loss, so the criterion can mine hard negatives and normalise as its
paper does. ``scores`` gives the face probabilities the loss trains towards; they are
:func:`~facescope.ops.scores.scores_from_logits` with the loss's ``logit_scale``, so a head trained with
a loss scores at inference as it was trained when its registry entry declares that scale
(:class:`~facescope.models.spec.HeadLayout` ``logit_scale``; the criteria builder checks it).

Names (a recipe's ``loss.cls_loss``): :data:`CLASSIFICATION_LOSSES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from facescope.ops.scores import scores_from_logits


class ClassificationLoss(Protocol):
    """A face/background classification loss."""

    #: Score activations of the heads it trains (``"softmax"``: C = 2, ``"sigmoid"``: C = 1).
    activations: ClassVar[tuple[str, ...]]

    @property
    def logit_scale(self) -> float:
        """The scale the logits take before the activation in training (and so at inference)."""
        ...

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``Tensor[B, N, C]`` logits, ``Tensor[B, N]`` 0/1 labels -> ``Tensor[B, N]`` losses."""
        ...

    def scores(self, logits: Tensor) -> Tensor:
        """``Tensor[B, N, C]`` logits -> ``Tensor[B, N]`` face probabilities."""
        ...


def _activation(logits: Tensor) -> str:
    return "sigmoid" if logits.shape[-1] == 1 else "softmax"


class _UnitScale:
    """Scores are the head activation of the plain logits."""

    logit_scale = 1.0

    def scores(self, logits: Tensor) -> Tensor:
        return scores_from_logits(logits, _activation(logits), self.logit_scale)


@dataclass(frozen=True)
class SoftmaxCrossEntropy(_UnitScale):
    """2-way softmax over (background, face) logits, as SSD / RetinaFace / DSFD."""

    activations: ClassVar[tuple[str, ...]] = ("softmax",)

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        # (B, N, C) -> (B*N, C) -> (B, N)
        losses = F.cross_entropy(logits.reshape(-1, num_classes), labels.reshape(-1), reduction="none")
        return losses.reshape(labels.shape)


@dataclass(frozen=True)
class SigmoidCrossEntropy(_UnitScale):
    """Binary cross-entropy on a single face logit (``C = 1``), for sigmoid heads."""

    activations: ClassVar[tuple[str, ...]] = ("sigmoid",)

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits[..., 0], labels.to(logits.dtype), reduction="none")


@dataclass(frozen=True)
class FocalLoss(_UnitScale):
    """Focal loss (Lin et al. 2017), ``-alpha_t (1 - p_t)^gamma log p_t``, on the face probability ``p``.

    A 2-way softmax's face probability is ``sigmoid(l_face - l_background)``, so both head kinds go
    through torchvision's ``sigmoid_focal_loss`` on one face logit (``C = 1``: the logit itself).

    Args:
        alpha: weight of the faces (``1 - alpha`` of the background); a negative value weighs both by 1.
        gamma: the focusing exponent.
    """

    alpha: float = 0.25
    gamma: float = 2.0
    activations: ClassVar[tuple[str, ...]] = ("sigmoid", "softmax")

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        face_logit = logits[..., 0] if logits.shape[-1] == 1 else logits[..., 1] - logits[..., 0]
        return sigmoid_focal_loss(face_logit, labels.to(logits.dtype), self.alpha, self.gamma, reduction="none")


@dataclass(frozen=True)
class LargeMarginCosine:
    """Large-margin cosine loss (CosFace, Wang et al. 2018): softmax cross-entropy over
    ``scale * (cos_c - margin * [c == label])``.

    The head outputs the cosines between the anchor feature and each class weight (``C = 2``,
    values in [-1, 1]); the margin pushes the true class's cosine above the other's by ``margin``.
    Scores are ``softmax(scale * cos)`` (``logit_scale = scale``).

    Args:
        scale: the logit scale ``s``.
        margin: the cosine margin ``m``.
    """

    scale: float = 30.0
    margin: float = 0.35
    activations: ClassVar[tuple[str, ...]] = ("softmax",)

    @property
    def logit_scale(self) -> float:
        return self.scale

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        margins = F.one_hot(labels, logits.shape[-1]).to(logits.dtype) * self.margin
        return SoftmaxCrossEntropy()(self.scale * (logits - margins), labels)

    def scores(self, logits: Tensor) -> Tensor:
        return scores_from_logits(logits, "softmax", self.scale)


#: The classification losses a recipe names (``loss.cls_loss``) and what each is built from: the
#: :class:`~facescope.losses.multibox.MultiBoxLossConfig` fields ``focal_alpha`` / ``focal_gamma`` and
#: ``margin_scale`` / ``margin``.
CLASSIFICATION_LOSSES = ("softmax_ce", "sigmoid_ce", "focal", "large_margin_cosine")
