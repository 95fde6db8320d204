"""SCRFD's criterion (as the official mmdet head): ATSS assignment, Quality Focal Loss on every
prior, DIoU boxes and smooth-L1 landmarks on the positives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from facescope.assign.atss import ATSSAssigner
from facescope.assign.labels import Assignment
from facescope.losses.result import MIN_POSITIVE_SCORE, NUM_POSITIVE, CriterionResult
from facescope.losses.gfl import quality_focal_loss
from facescope.losses.iou import aligned_iou, diou_loss
from facescope.losses.smooth_l1 import smooth_l1_sum
from facescope.losses.reduce import mean_across_ranks
from facescope.losses.targets import (
    FaceBatch,
    FlatOutputs,
    Positives,
    PriorGenerator,
    TargetEncoder,
    assign_batch,
    check_batch,
    encode_landmark_targets,
    flatten_levels,
    min_positive_score,
)
from facescope.ops.anchors import Priors
from facescope.ops.scores import scores_from_logits
from facescope.structures import FaceTargets

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseOutputs


@dataclass(frozen=True)
class SCRFDLossConfig:
    """Loss settings of the official configs: ATSS top-9, QFL (beta 2), DIoU x2, landmark
    smooth-L1 (beta 1/9) x0.1."""

    atss_topk: int = 9
    qfl_beta: float = 2.0
    box_weight: float = 2.0
    landmark_weight: float = 0.1
    landmark_beta: float = 1.0 / 9.0


class SCRFDCriterion:
    """SCRFD losses: QFL on all priors with IoU targets, normalised by the positive count (at least
    one per image); DIoU on positives weighted by their detached scores and landmark smooth-L1 on
    annotated points, both normalised by the summed weights. Normalisers are averaged across
    data-parallel ranks. Anchors that ATSS ignores (near an ignored face) take no part.

    Args:
        anchor_generator: the model's priors.
        coder: the distance coder (landmark encoding).
        config: :class:`SCRFDLossConfig`.

    Returns (when called):
        :class:`~facescope.losses.criteria.CriterionResult` with losses ``cls``, ``box``
        (``landmark`` when the head predicts landmarks) and per-image ``num_positive`` and
        ``min_positive_score``.
    """

    def __init__(self, anchor_generator: PriorGenerator, coder: TargetEncoder, config: SCRFDLossConfig | None = None) -> None:
        self.anchor_generator = anchor_generator
        self.coder = coder
        self.config = config or SCRFDLossConfig()
        self.assigner = ATSSAssigner(self.config.atss_topk)

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        """Weighted losses for a ``[B, 3, H, W]`` batch with ``B`` targets."""
        flat = flatten_levels(outputs)
        dtype, device = flat.box_regs.dtype, flat.box_regs.device
        priors = self.anchor_generator.priors(input_hw, device, dtype)
        check_batch(flat, priors, targets, input_hw)
        assignment = assign_batch(self.assigner, priors, targets)
        faces = FaceBatch.from_targets(targets, device, dtype)
        positives = Positives.from_assignment(assignment, priors, faces)
        scores = scores_from_logits(flat.cls_logits.detach(), "sigmoid")
        per_image = {NUM_POSITIVE: assignment.positive.sum(dim=1), MIN_POSITIVE_SCORE: min_positive_score(scores, assignment)}
        return CriterionResult(self.losses(flat, assignment, positives, faces), per_image)

    def losses(self, flat: FlatOutputs, assignment: Assignment, positives: Positives, faces: FaceBatch) -> dict[str, Tensor]:
        """``{"cls", "box"[, "landmark"]}``, each already multiplied by its weight."""
        cfg = self.config
        logits = flat.cls_logits[..., 0]  # [B, N]
        pred_boxes, target_boxes = _stride_unit_boxes(positives.priors, positives.take(flat.box_regs), faces.boxes[positives.face_rows])
        weights = positives.take(logits).detach().sigmoid()
        quality = torch.zeros_like(logits)
        quality[positives.image_idxs, positives.prior_idxs] = aligned_iou(pred_boxes.detach(), target_boxes)
        num_positive = assignment.positive.sum(dim=1).clamp(min=1).sum()  # at least one per image, as mmdet
        cls_normaliser = mean_across_ranks(num_positive.to(logits.dtype)).clamp(min=1.0)
        weight_normaliser = mean_across_ranks(weights.sum()).clamp(min=1e-6)
        qfl = torch.where(assignment.ignored, 0.0, quality_focal_loss(logits, quality, cfg.qfl_beta))
        losses = {
            "cls": qfl.sum() / cls_normaliser,
            "box": cfg.box_weight * (weights * diou_loss(pred_boxes, target_boxes)).sum() / weight_normaliser,
        }
        if flat.landmark_regs is not None:
            landmark_targets, valid = encode_landmark_targets(self.coder, positives, faces)
            point_weights = valid * weights[:, None]  # [P, 10]
            smooth_l1 = smooth_l1_sum(positives.take(flat.landmark_regs), landmark_targets, cfg.landmark_beta, point_weights)
            losses["landmark"] = cfg.landmark_weight * smooth_l1 / weight_normaliser
        return losses


def _stride_unit_boxes(priors: Priors, regs: Tensor, gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted and target boxes in units of each prior's stride (where SCRFD applies its losses)."""
    strides = priors.strides[:, None]
    centers = priors.centers / strides
    pred = torch.cat([centers - regs[:, :2], centers + regs[:, 2:]], dim=1)
    return pred, gt_boxes / strides
