"""The interface every face detector in facescope implements.

``forward`` returns raw head outputs (:class:`DenseOutputs`); ``activate`` turns logits into
probabilities with the activation its registry entry declares (:func:`~facescope.ops.scores.scores_from_logits`).
Post-processing (decode, threshold, NMS) is a separate object of :mod:`facescope.inference.postprocess`;
training losses are criterion objects outside the model (:mod:`facescope.losses.criteria`), chosen by the
registry entry and the recipe: a model knows nothing of its losses. None of these depends on ``self.training``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from facescope.models.spec import InputSpec, ScoreActivation
from facescope.ops.anchors import AnchorGenerator
from facescope.ops.coders import BoxCoder
from facescope.ops.scores import scores_from_logits


@dataclass
class DenseOutputs:
    """Raw outputs of a dense head, one tensor per pyramid level.

    Rows are ordered (row, column, anchor) within a level, the order of
    :class:`~facescope.ops.anchors.AnchorGenerator`.

    Attributes:
        cls_logits: ``[Tensor[B, N_l, C]]`` classification logits.
        box_regs: ``[Tensor[B, N_l, 4]]`` encoded boxes.
        landmark_regs: ``[Tensor[B, N_l, 10]]`` encoded landmarks, or None.
        extras: family-specific training-time outputs (e.g. RetinaFace's dense-branch parameters).
        aux: auxiliary shots (e.g. DSFD's first shot), each a :class:`DenseOutputs` over its own
            anchor generator; decoding and export use this (final) shot only.
    """

    cls_logits: list[Tensor]
    box_regs: list[Tensor]
    landmark_regs: list[Tensor] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    aux: tuple[DenseOutputs, ...] = ()

    def map(self, fn: Callable[[Tensor], Tensor]) -> DenseOutputs:
        """Apply ``fn`` to every head tensor of every shot (e.g. ``lambda t: t.float()`` after AMP)."""
        landmarks = [fn(t) for t in self.landmark_regs] if self.landmark_regs is not None else None
        return DenseOutputs(
            [fn(t) for t in self.cls_logits],
            [fn(t) for t in self.box_regs],
            landmarks,
            self.extras,
            tuple(shot.map(fn) for shot in self.aux),
        )


@dataclass
class DensePredictions:
    """Activated predictions over all priors, levels concatenated.

    Attributes:
        scores: ``Tensor[B, N]`` face probabilities.
        box_regs: ``Tensor[B, N, 4]`` encoded boxes.
        landmark_regs: ``Tensor[B, N, 10]`` or None.
    """

    scores: Tensor
    box_regs: Tensor
    landmark_regs: Tensor | None = None

    @classmethod
    def from_levels(
        cls, scores: Sequence[Tensor], box_regs: Sequence[Tensor], landmark_regs: Sequence[Tensor] | None
    ) -> DensePredictions:
        """Concatenate per-level ``Tensor[B, N_l]`` / ``[B, N_l, 4]`` / ``[B, N_l, 10]`` tensors."""
        landmarks = torch.cat(list(landmark_regs), dim=1) if landmark_regs else None
        return cls(torch.cat(list(scores), dim=1), torch.cat(list(box_regs), dim=1), landmarks)


def _mark_loaded(module: nn.Module, incompatible_keys: Any) -> None:
    module.weights_loaded = True


class DenseFaceDetector(nn.Module):
    """Base class of single-stage detectors that predict a score, a box and optionally landmarks
    for every prior of an :class:`AnchorGenerator`.

    Subclasses set ``family``, implement :meth:`forward`, provide ``backbone``, and are
    constructed with the prior generator, coder, input spec and score activation of their
    catalogue entry (:mod:`facescope.models.catalog`). Presets and the default training
    criterion belong to the registry entry.

    Args:
        anchor_generator: the final shot's priors.
        coder: the box (and landmark) coder.
        input_spec: the network input's normalisation.
        has_landmarks: the head predicts 5 landmarks.
        score_activation, logit_scale: how logits become face scores
            (:func:`~facescope.ops.scores.scores_from_logits`; the entry's ``HeadLayout`` declares them).

    Attributes:
        backbone: the classification network the features start from (what ImageNet weights
            initialise); a submodule, or a property returning one where the state-dict keys
            name it otherwise (RetinaFace's ``body``).
    """

    family: ClassVar[str] = "dense"
    backbone: nn.Module

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        coder: BoxCoder,
        input_spec: InputSpec,
        has_landmarks: bool,
        score_activation: ScoreActivation,
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.coder = coder
        self.input_spec = input_spec
        self.has_landmarks = has_landmarks
        # False while the weights are the random initialisation: a Detector warns that its
        # detections mean nothing. Loading a state dict (any way), importing ONNX weights or
        # training sets it.
        self.weights_loaded = False
        self.register_load_state_dict_post_hook(_mark_loaded)
        self.score_activation = score_activation
        self.logit_scale = logit_scale

    def forward(self, images: Tensor) -> DenseOutputs:  # pragma: no cover - abstract
        """``Tensor[B, 3, H, W]`` normalised images -> raw head outputs."""
        raise NotImplementedError

    def scores_from_logits(self, cls_logits: Tensor) -> Tensor:
        """``Tensor[B, N, C]`` logits -> ``Tensor[B, N]`` face probabilities (the declared activation)."""
        return scores_from_logits(cls_logits, self.score_activation, self.logit_scale)

    @property
    def anchor_generators(self) -> tuple[AnchorGenerator, ...]:
        """One prior generator per shot, aligned with ``(final, *aux)`` of :class:`DenseOutputs`."""
        return (self.anchor_generator,)

    def activate(self, outputs: DenseOutputs) -> DensePredictions:
        """Turn logits into probabilities and concatenate the levels."""
        scores = [self.scores_from_logits(level) for level in outputs.cls_logits]
        return DensePredictions.from_levels(scores, outputs.box_regs, outputs.landmark_regs)
