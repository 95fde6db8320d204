"""Training criteria: loss objects that live outside the models (as DETR's ``SetCriterion``).

A criterion turns a model's raw outputs and the batch's ground truth into weighted loss terms and
per-image statistics. The engine only does::

    criterion = build_criterion(model, config.loss)      # once, before training
    result = criterion(model(images), targets, input_hw)  # every step
    result.total.backward()

The criteria: :class:`~facescope.losses.multibox.MultiBoxCriterion` (max-IoU, OHEM, smooth-L1;
RetinaFace), :class:`~facescope.losses.scrfd.SCRFDCriterion` (ATSS, QFL, DIoU) and
:class:`MultiShotCriterion` (a weighted sum over a model's shots, e.g. DSFD's progressive anchor
loss). A model class names its default loss settings (``default_loss_config``) and wires its
criterion from them (``make_criterion``); :func:`build_criterion` applies a recipe's overrides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
from torch import Tensor

from facescope.config import from_dict, to_dict
from facescope.errors import ConfigError, suggest

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector, DenseOutputs
    from facescope.structures import FaceTargets

ConfigT = TypeVar("ConfigT")


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


class MultiShotCriterion:
    """A weighted sum of one criterion per shot (DSFD's progressive anchor loss).

    ``shots[0]`` scores the final shot (``outputs`` itself), ``shots[k]`` the auxiliary shot
    ``outputs.aux[k - 1]``; each shot criterion carries that shot's anchor generator, so the
    list is aligned with the model's ``anchor_generators``.

    Args:
        shots: one criterion per shot, final first.
        weights: one weight per shot (default all 1).

    Returns (when called):
        The final shot's terms under their own names (``cls``, ``box``, ...) and auxiliary shot
        ``k``'s as ``aux{k}_cls``, ..., each multiplied by its shot's weight; the per-image
        statistics are the final shot's.
    """

    def __init__(self, shots: Sequence[Criterion], weights: Sequence[float] | None = None) -> None:
        if not shots:
            raise ValueError("a multi-shot criterion needs at least one shot")
        weights = tuple(weights) if weights is not None else (1.0,) * len(shots)
        if len(weights) != len(shots):
            raise ValueError(f"{len(weights)} weights for {len(shots)} shots")
        self.shots = tuple(shots)
        self.weights = weights

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        shot_outputs = (outputs, *outputs.aux)
        if len(shot_outputs) != len(self.shots):
            raise ValueError(f"the model returned {len(shot_outputs)} shots but the criterion scores {len(self.shots)}")
        losses: dict[str, Tensor] = {}
        per_image: dict[str, Tensor] = {}
        for index, (criterion, weight, shot) in enumerate(zip(self.shots, self.weights, shot_outputs)):
            result = criterion(shot, targets, input_hw)
            prefix = f"aux{index}_" if index else ""
            losses.update({prefix + name: weight * value for name, value in result.losses.items()})
            if index == 0:
                per_image = result.per_image
        return CriterionResult(losses, per_image)


def build_criterion(model: DenseFaceDetector, overrides: Mapping[str, Any] | None = None) -> Criterion:
    """The model's default criterion, with a recipe's ``loss:`` overrides applied.

    The model class declares its typed loss settings (``default_loss_config``, e.g. RetinaFace's
    ``PORT_LOSS``) and builds its criterion from them (``make_criterion``).

    Args:
        model: the (unwrapped) model the criterion trains; it provides anchors and the box coder.
        overrides: field values of the criterion's typed config; an unknown field is a
            :class:`~facescope.errors.ConfigError` naming it and the closest valid one.

    Example:
        >>> criterion = build_criterion(create_model("retinaface_mnet025"), {"box_weight": 1.0})
        >>> criterion.config.box_weight
        1.0
    """
    defaults = model.default_loss_config
    if defaults is None:
        raise ConfigError(f"{type(model).__name__} has no training criterion")
    return model.make_criterion(apply_loss_overrides(defaults, overrides or {}))


def apply_loss_overrides(config: ConfigT, overrides: Mapping[str, Any]) -> ConfigT:
    """``config`` (a loss-config dataclass) with ``overrides`` applied, keys and types checked.

    Raises:
        ConfigError: an unknown key (naming the closest valid one) or a value of the wrong type.
    """
    if not overrides:
        return config
    names = [f.name for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    for key in overrides:
        if key not in names:
            raise ConfigError(f"unknown loss setting 'loss.{key}'{suggest(str(key), names)}")
    return from_dict(type(config), {**to_dict(config), **overrides}, source="loss")
