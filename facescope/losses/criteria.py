"""Training criteria by name: which loss trains a model is chosen by its registry entry and the recipe.

A criterion (loss object outside the model, as DETR's ``SetCriterion``) turns a model's raw outputs
and the batch's ground truth into weighted loss terms and per-image statistics. The engine only does::

    criterion = build_criterion(model, config.loss)      # once, before training
    result = criterion(model(images), targets, input_hw)  # every step
    result.total.backward()

The registered criteria (:data:`CRITERIA`; a model's registry entry names its default,
``ModelEntry.criterion``, and a recipe's ``loss.criterion`` may name another):

* ``retinaface_port`` / ``retinaface_paper``: :class:`~facescope.losses.multibox.MultiBoxCriterion`
  (max-IoU, OHEM, smooth-L1) with Pytorch_Retinaface's / the paper's settings, plus the pixel term
  (:class:`~facescope.losses.pixel.PixelLoss`) when the model has a dense-regression branch;
* ``dsfd_pal``: DSFD's Progressive Anchor Loss, one multibox criterion per shot
  (:class:`MultiShotCriterion`, loss = second + first), settings :data:`~facescope.losses.multibox.DSFD_LOSS`;
* ``drmc``: ASFD's distance-based regression and margin-based classification, the same per-shot structure
  with DIoU on decoded boxes and the large-margin cosine loss (:data:`~facescope.losses.multibox.DRMC_LOSS`);
* ``scrfd``: :class:`~facescope.losses.scrfd.SCRFDCriterion` (ATSS, QFL, DIoU);
* ``shf``: :class:`~facescope.losses.shf.SHFCriterion` (the release's labels, OHEM, sigma-3 smooth-L1).

The rest of a recipe's ``loss:`` section sets fields of the criterion's typed settings (unknown keys and
bad values are :class:`~facescope.errors.ConfigError`); for the multibox criteria that includes the box and
classification losses by name (``box_loss``, ``cls_loss``). A classification loss that scores otherwise
than the model's declared activation is refused (a head trained with ``large_margin_cosine`` at scale
``s`` must score ``softmax(s * logits)`` at inference: its entry declares ``logit_scale = s``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from torch import Tensor

from facescope.config import from_dict, to_dict
from facescope.errors import ConfigError, suggest
from facescope.losses.classification import LargeMarginCosine
from facescope.losses.multibox import DRMC_LOSS, DSFD_LOSS, PAPER_LOSS, PORT_LOSS, CriterionTerm, MultiBoxCriterion, MultiBoxLossConfig
from facescope.losses.pixel import PixelLoss
from facescope.losses.result import MIN_POSITIVE_SCORE, NUM_POSITIVE, Criterion, CriterionResult
from facescope.losses.scrfd import SCRFDCriterion, SCRFDLossConfig
from facescope.losses.shf import SHF_LOSS, SHFCriterion
from facescope.models.registry import entries, get_model_entry
from facescope.named_registry import NamedRegistry

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector, DenseOutputs
    from facescope.structures import FaceTargets

__all__ = [
    "CRITERIA",
    "MIN_POSITIVE_SCORE",
    "NUM_POSITIVE",
    "Criterion",
    "CriterionResult",
    "CriterionSpec",
    "MultiShotCriterion",
    "apply_loss_overrides",
    "build_criterion",
    "default_criterion_name",
]

ConfigT = TypeVar("ConfigT")


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


@dataclass(frozen=True)
class CriterionSpec:
    """A registered criterion: its typed default settings and how it is built for a model.

    Attributes:
        name: what a registry entry (``ModelEntry.criterion``) and a recipe (``loss.criterion``) call it.
        summary: one line for the README and error messages.
        defaults: its settings (a frozen dataclass; a recipe's ``loss:`` keys override its fields).
        build: ``(model, settings) -> criterion``; reads the model's anchor generators, coder and score
            activation (and a dense-regression branch where it has one).
    """

    name: str
    summary: str
    defaults: Any
    build: Callable[[DenseFaceDetector, Any], Criterion]


def multibox_per_shot(model: DenseFaceDetector, config: MultiBoxLossConfig) -> Criterion:
    """One :class:`MultiBoxCriterion` per shot of ``model`` (one shot: that criterion itself), all with ``config``.

    The final shot also gets the pixel term when the model has a dense-regression branch
    (``model.dense_branch``). The classification loss must score as the model does (see the module docstring).

    Example:
        >>> criterion = multibox_per_shot(create_model("dsfd_mnet025"), DSFD_LOSS)
        >>> len(criterion.shots), criterion.weights
        (2, (1.0, 1.0))
    """
    if config.cls_loss == "large_margin_cosine" and config.margin_scale is None:
        # a head that declares a logit scale (a cosine head) sets the loss's; a plain-logit head (scale 1) gets the
        # loss's default 30 and is refused below, as a cosine loss on plain logits would train nonsense
        scale = model.logit_scale if model.logit_scale != 1.0 else LargeMarginCosine.scale
        config = dataclasses.replace(config, margin_scale=scale)
    _check_scoring(model, config)
    dense_branch = getattr(model, "dense_branch", None)
    pixel: list[CriterionTerm] = []
    if dense_branch is not None:
        pixel = [PixelLoss(dense_branch, config.pixel_weight, config.max_pixel_anchors)]
    shots = [
        MultiBoxCriterion(generator, model.coder, config, terms=pixel if index == 0 else ())
        for index, generator in enumerate(model.anchor_generators)
    ]
    return shots[0] if len(shots) == 1 else MultiShotCriterion(shots)


def _check_scoring(model: DenseFaceDetector, config: MultiBoxLossConfig) -> None:
    """Refuse a classification loss whose scores are not the ones the model will report at inference."""
    loss = config.classification_loss()
    activation, scale = model.score_activation, model.logit_scale
    if activation not in loss.activations or loss.logit_scale != scale:
        raise ConfigError(
            f"loss.cls_loss '{config.cls_loss}' trains {'/'.join(loss.activations)} scores of logits x {loss.logit_scale:g}, "
            f"but {_model_name(model)} scores {activation}(logits x {scale:g}) at inference (its registry entry's "
            "HeadLayout score_activation / logit_scale): choose a loss that scores as the entry declares"
        )


#: Every registered criterion, by name.
CRITERIA: NamedRegistry[CriterionSpec] = NamedRegistry.of(
    "loss.criterion",
    ((spec.name, spec) for spec in (
        CriterionSpec("retinaface_port", "multibox, Pytorch_Retinaface's MultiBoxLoss settings", PORT_LOSS, multibox_per_shot),
        CriterionSpec("retinaface_paper", "multibox, the RetinaFace paper's settings (+ pixel term)", PAPER_LOSS, multibox_per_shot),
        CriterionSpec("dsfd_pal", "Progressive Anchor Loss: multibox per shot, DSFD's settings", DSFD_LOSS, multibox_per_shot),
        CriterionSpec(
            "drmc",
            "ASFD's DRMC: DIoU regression + large-margin cosine classification on each shot, OHEM 3:1 (first shot = auxiliary loss)",
            DRMC_LOSS,
            multibox_per_shot,
        ),
        CriterionSpec(
            "scrfd",
            "ATSS, quality focal loss, DIoU, landmark smooth-L1",
            SCRFDLossConfig(),
            lambda model, config: SCRFDCriterion(model.anchor_generator, model.coder, config),
        ),
        CriterionSpec(
            "shf",
            "SHF's release rule: labels with a border rule, anchor OHEM, sigma-3 smooth-L1",
            SHF_LOSS,
            lambda model, config: SHFCriterion(model.anchor_generator, model.coder, config),
        ),
    )),
    hint=lambda names: f"valid: {names}",
)


def _model_name(model: Any) -> str:
    return getattr(model, "registry_name", None) or type(model).__name__


def default_criterion_name(model: DenseFaceDetector) -> str:
    """The criterion the model's registry entry names.

    A model built outside the registry (no ``registry_name``) takes its family's criterion when all the
    family's entries name the same one (DSFD's ``dsfd_pal``); otherwise the choice is the caller's
    (``loss.criterion``), not a guess.

    Raises:
        ConfigError: the entry names none, or the family's entries disagree.
    """
    name = getattr(model, "registry_name", None)
    if name:
        criteria = {get_model_entry(name).criterion}
    else:
        criteria = {entry.criterion for entry in entries() if entry.family == model.family}
    if len(criteria) > 1:
        choices = sorted(c for c in criteria if c)
        raise ConfigError(
            f"{_model_name(model)} was built outside the registry and the '{model.family}' entries train with "
            f"different criteria ({', '.join(choices)}): name one in loss.criterion"
        )
    criterion = next(iter(criteria), None)
    if criterion is None:
        raise ConfigError(f"{_model_name(model)} has no training criterion")
    return criterion


def build_criterion(model: DenseFaceDetector, overrides: Mapping[str, Any] | None = None) -> Criterion:
    """The criterion that trains ``model``: its registry entry's, or the recipe's ``loss.criterion``,
    with the recipe's other ``loss:`` keys applied to its typed settings.

    Args:
        model: the (unwrapped) model the criterion trains; it provides anchors, the box coder and
            the score activation.
        overrides: a recipe's ``loss:`` section: ``criterion`` (a name of :data:`CRITERIA`) and fields
            of that criterion's settings; an unknown name or field is a
            :class:`~facescope.errors.ConfigError` naming the valid ones.

    Example:
        >>> criterion = build_criterion(create_model("retinaface_mnet025"), {"box_weight": 1.0, "box_loss": "diou"})
        >>> criterion.config.box_weight, criterion.config.box_loss
        (1.0, 'diou')
    """
    settings = dict(overrides or {})
    name = settings.pop("criterion", None) or default_criterion_name(model)
    spec = CRITERIA.get(str(name))  # an unknown name: one ConfigError with the closest name and the valid ones
    return spec.build(model, apply_loss_overrides(spec.defaults, settings))


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
