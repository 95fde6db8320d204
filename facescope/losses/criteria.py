"""Training criteria: loss objects that live outside the models (as DETR's ``SetCriterion``).

A criterion turns a model's raw outputs and the batch's ground truth into weighted loss terms and
per-image statistics. The engine only does::

    criterion = build_criterion(model, config.loss)      # once, before training
    result = criterion(model(images), targets, input_hw)  # every step
    result.total.backward()

INTERFACE STUB: the concrete criteria (multibox, SCRFD's ATSS + QFL + DIoU, multi-shot) replace
the adapter below; the signatures here are the contract the engine codes against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector, DenseOutputs
    from facescope.structures import FaceTargets


@dataclass
class CriterionResult:
    """What a criterion returns for one batch of ``B`` images.

    Attributes:
        losses: weighted scalar loss terms (``"cls"``, ``"box"``, ``"landmark"``, ...); their sum is
            the training loss.
        per_image: ``Tensor[B]`` statistics per image (detached), e.g. ``"min_positive_score"`` for
            SHF's hard image mining; empty when a criterion computes none.
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


def build_criterion(model: DenseFaceDetector, overrides: Mapping[str, Any] | None = None) -> Criterion:
    """The model's default criterion, with a recipe's ``loss:`` overrides applied.

    Args:
        model: the (unwrapped) model the criterion trains; it provides anchors and the box coder.
        overrides: field values of the criterion's typed config; an unknown field is a
            :class:`~facescope.errors.ConfigError` naming it and the closest valid one.
    """
    return _ModelLossAdapter(model, dict(overrides or {}))


class _ModelLossAdapter:
    """Temporary bridge to the old ``model.loss`` (removed once the criteria exist)."""

    def __init__(self, model: DenseFaceDetector, overrides: dict[str, Any]) -> None:
        import dataclasses

        from facescope.errors import ConfigError, suggest

        self.model = model
        if overrides:
            current = getattr(model, "loss_config", None)
            if current is None:
                raise ConfigError(f"{type(model).__name__} has no loss settings to override")
            names = {f.name for f in dataclasses.fields(current)}
            for key in overrides:
                if key not in names:
                    raise ConfigError(f"unknown loss setting 'loss.{key}'{suggest(key, names)}")
            model.loss_config = dataclasses.replace(current, **overrides)

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        return CriterionResult(self.model.loss(outputs, targets, input_hw))
