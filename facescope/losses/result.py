"""What every criterion returns and the per-image statistics every criterion reports.

Kept apart from :mod:`facescope.losses.criteria` (which names and builds the criteria) so that the
criterion modules import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseOutputs
    from facescope.structures import FaceTargets


# Keys of ``CriterionResult.per_image`` that every criterion reports (samplers such as SHF's hard image
# miner read them): positive anchors per image, and the lowest face score among them (1.0 when none).
NUM_POSITIVE = "num_positive"
MIN_POSITIVE_SCORE = "min_positive_score"


@dataclass
class CriterionResult:
    """What a criterion returns for one batch of ``B`` images.

    Attributes:
        losses: weighted scalar loss terms (``"cls"``, ``"box"``, ``"landmark"``, ...); their sum is
            the training loss.
        per_image: ``Tensor[B]`` statistics per image (detached): ``"num_positive"`` (positive
            anchors) and ``"min_positive_score"`` (the lowest face score among them, 1.0 when there
            are none; SHF's hard image mining reads it).
    """

    losses: dict[str, Tensor]
    per_image: dict[str, Tensor] = field(default_factory=dict)

    @property
    def total(self) -> Tensor:
        """The training loss: the sum of the weighted terms."""
        return torch.stack(list(self.losses.values())).sum()


class Criterion(Protocol):
    """A training loss for one model architecture."""

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        """Raw outputs of a ``[B, 3, H, W]`` batch and ``B`` targets -> weighted losses."""
        ...
