"""SSD-style multi-task "multibox" criterion with online hard example mining (OHEM), as RetinaFace and DSFD use.

For every image: anchors are matched to faces by max IoU (:mod:`facescope.assign.max_iou`); the
classification loss is taken over the positives and the hardest negatives (at most ``neg_pos_ratio``
per positive, chosen per image by their own loss); the box loss and the landmarks' smooth-L1 over the
positives. Sums are normalised by the number of positives in the batch (landmarks: positives whose
face has landmarks), as Pytorch_Retinaface's ``MultiBoxLoss``. Further terms (RetinaFace's pixel loss)
plug in as :class:`CriterionTerm` objects.

Both losses are chosen by name in :class:`MultiBoxLossConfig` (a recipe's ``loss:`` section):

* ``box_loss``: ``smooth_l1`` on the encoded deltas (default), ``diou`` / ``giou`` on the decoded boxes
  against the faces in pixels (torchvision's ``distance_box_iou_loss`` / ``generalized_box_iou_loss``;
  ASFD's distance-based regression is DIoU);
* ``cls_loss``: ``softmax_ce`` (default), ``sigmoid_ce``, ``focal`` (``focal_alpha``, ``focal_gamma``),
  ``large_margin_cosine`` (``margin_scale``, ``margin``; ASFD's margin-based classification).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor
from torchvision.ops import distance_box_iou_loss, generalized_box_iou_loss

from facescope.assign.labels import NEGATIVE, POSITIVE, Assignment
from facescope.assign.max_iou import MaxIoUAssigner
from facescope.config import require
from facescope.losses.classification import (
    CLASSIFICATION_LOSSES,
    ClassificationLoss,
    FocalLoss,
    LargeMarginCosine,
    SigmoidCrossEntropy,
    SoftmaxCrossEntropy,
)
from facescope.losses.reduce import mean_across_ranks
from facescope.losses.result import MIN_POSITIVE_SCORE, NUM_POSITIVE, CriterionResult
from facescope.losses.smooth_l1 import smooth_l1_sum
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
from facescope.structures import FaceTargets

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseOutputs


@dataclass(frozen=True)
class MultiBoxLossConfig:
    """Matching, mining and weighting of the multibox criterion.

    Attributes:
        pos_iou, neg_iou, force_match_min_iou, retarget_below_floor: see
            :func:`~facescope.assign.max_iou.assign_max_iou`.
        neg_pos_ratio: hard negatives kept per positive, per image.
        min_negatives: hard negatives kept in an image even when it has fewer positives (0 = an
            image without faces contributes no classification loss, as the port).
        cls_weight, box_weight, landmark_weight: loss weights (the returned losses are weighted).
        smooth_l1_beta: smooth-L1 transition point.
        pixel_weight: weight of RetinaFace's dense pixel loss (used only by a model with a
            dense-regression branch).
        max_pixel_anchors: positive anchors per batch rendered for the pixel loss.
        box_loss: ``"smooth_l1"`` (deltas), ``"diou"`` or ``"giou"`` (decoded boxes); :data:`BOX_LOSSES`.
        cls_loss: ``"softmax_ce"``, ``"sigmoid_ce"``, ``"focal"`` or ``"large_margin_cosine"``
            (:data:`~facescope.losses.classification.CLASSIFICATION_LOSSES`).
        focal_alpha, focal_gamma: the focal loss's alpha and gamma.
        margin_scale, margin: the large-margin cosine loss's scale ``s`` (None: the model's ``logit_scale`` when it
            declares one other than 1, filled in when the criterion is built for a model; else 30) and cosine margin ``m``.
    """

    pos_iou: float = 0.35
    neg_iou: float | None = None
    force_match_min_iou: float | None = 0.2
    retarget_below_floor: bool = True
    neg_pos_ratio: float = 7.0
    min_negatives: int = 0
    cls_weight: float = 1.0
    box_weight: float = 2.0
    landmark_weight: float = 1.0
    smooth_l1_beta: float = 1.0
    pixel_weight: float = 0.01
    max_pixel_anchors: int = 16
    box_loss: str = "smooth_l1"
    cls_loss: str = "softmax_ce"
    focal_alpha: float = FocalLoss.alpha
    focal_gamma: float = FocalLoss.gamma
    margin_scale: float | None = None
    margin: float = LargeMarginCosine.margin

    def __post_init__(self) -> None:
        require(self.box_loss in BOX_LOSSES, "box_loss", f"must be one of {list(BOX_LOSSES)}, got {self.box_loss!r}")
        require(
            self.cls_loss in CLASSIFICATION_LOSSES,
            "cls_loss",
            f"must be one of {list(CLASSIFICATION_LOSSES)}, got {self.cls_loss!r}",
        )
        require(self.margin_scale is None or self.margin_scale > 0, "margin_scale", f"must be > 0 (or null: the model's), got {self.margin_scale}")

    def classification_loss(self) -> ClassificationLoss:
        """The per-anchor classification loss ``cls_loss`` names, with its settings."""
        if self.cls_loss == "focal":
            return FocalLoss(self.focal_alpha, self.focal_gamma)
        if self.cls_loss == "large_margin_cosine":
            return LargeMarginCosine(LargeMarginCosine.scale if self.margin_scale is None else self.margin_scale, self.margin)
        return SigmoidCrossEntropy() if self.cls_loss == "sigmoid_ce" else SoftmaxCrossEntropy()


#: Box losses on decoded boxes: ``(Tensor[P, 4] predicted, Tensor[P, 4] faces) -> summed loss``.
IOU_BOX_LOSSES: dict[str, Callable[..., Tensor]] = {
    "diou": distance_box_iou_loss,
    "giou": generalized_box_iou_loss,
}
#: Every ``box_loss`` name: smooth-L1 on the encoded deltas, or an IoU loss on the decoded boxes.
BOX_LOSSES = ("smooth_l1", *IOU_BOX_LOSSES)


# Pytorch_Retinaface: MultiBoxLoss(2, 0.35, True, 0, True, 7, 0.35, False), loss = 2.0 loc + conf + landm.
PORT_LOSS = MultiBoxLossConfig()
# The paper: IoU >= 0.5 positive, < 0.3 negative, OHEM 3:1, L = L_cls + 0.25 L_box + 0.1 L_pts + 0.01 L_pixel.
# An image without faces keeps 3 hard negatives (as if it had one positive).
PAPER_LOSS = MultiBoxLossConfig(
    pos_iou=0.5,
    neg_iou=0.3,
    force_match_min_iou=None,
    retarget_below_floor=False,
    neg_pos_ratio=3.0,
    min_negatives=3,
    box_weight=0.25,
    landmark_weight=0.1,
)

#: DSFD's matching and mining of both shots (reference section 1.6): SSD bipartite matching (every face forces its
#: best anchor positive, whatever its IoU), IoU >= 0.4 positive and below background (no ignore band),
#: 2-way softmax cross-entropy with OHEM negatives:positives = 3:1 per image, smooth-L1 (beta 1) on the
#: positives' deltas with weight 1, both sums divided by the batch's positives. An image without faces
#: adds no classification loss (the Tencent loss; yxlijun divides by the batch size instead).
DSFD_LOSS = MultiBoxLossConfig(
    pos_iou=0.4,
    neg_iou=None,
    force_match_min_iou=0.0,
    retarget_below_floor=False,
    neg_pos_ratio=3.0,
    min_negatives=0,
    cls_weight=1.0,
    box_weight=1.0,
)


#: ASFD's DRMC (paper section 3.3; reference section 2.5 item 5): DSFD's matching and OHEM 3:1 on both shots, with
#: distance-based regression (DIoU on the decoded boxes) and margin-based classification (large-margin cosine
#: softmax, s = 30, m = 0.2; the head outputs cosines). The box weight 2 is facescope's choice (the paper gives
#: none; SCRFD weighs its DIoU term 2).
DRMC_LOSS = replace(DSFD_LOSS, box_loss="diou", box_weight=2.0, cls_loss="large_margin_cosine", margin=0.2)


class CriterionTerm(Protocol):
    """An extra loss term computed from a shot's outputs and its positives (e.g. the pixel loss)."""

    def __call__(self, outputs: DenseOutputs, positives: Positives, faces: FaceBatch) -> dict[str, Tensor]:
        """Weighted scalar terms keyed by name."""
        ...


@dataclass(frozen=True)
class OHEM:
    """Online hard example mining: per image the ``max(ratio * P, min_negatives)`` hardest negatives."""

    neg_pos_ratio: float
    min_negatives: int = 0

    def __call__(self, cls_losses: Tensor, labels: Tensor) -> Tensor:
        """``Tensor[B, N]`` losses and labels -> ``Tensor[B, N]`` bool mask of the kept negatives."""
        return ohem_negative_mask(cls_losses, labels, self.neg_pos_ratio, self.min_negatives)


def ohem_negative_mask(cls_losses: Tensor, labels: Tensor, neg_pos_ratio: float, min_negatives: int = 0) -> Tensor:
    """Hard negatives per image: the ``max(ratio * P, min_negatives)`` negatives of highest loss.

    Args:
        cls_losses: ``Tensor[B, N]`` per-anchor classification loss (only its order matters).
        labels: ``Tensor[B, N]`` 1 positive, 0 negative, -1 ignored.
        neg_pos_ratio: negatives per positive.
        min_negatives: negatives kept even in images with few or no positives.

    Returns:
        ``Tensor[B, N]`` bool, True for the selected negatives (never a positive or ignored anchor).
    """
    is_negative = labels == NEGATIVE
    num_pos = (labels == POSITIVE).sum(dim=1)
    wanted = torch.clamp((num_pos.to(torch.float64) * neg_pos_ratio).long(), min=min_negatives)
    num_neg = torch.minimum(wanted, is_negative.sum(dim=1))  # [B]
    ranking = torch.where(is_negative, cls_losses.detach(), torch.full_like(cls_losses, -torch.inf))
    order = ranking.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)  # rank[b, i] = position of anchor i in the descending order
    return (rank < num_neg[:, None]) & is_negative


class MultiBoxCriterion:
    """Max-IoU assignment, OHEM classification, smooth-L1 boxes and landmarks (+ extra terms).

    Args:
        anchor_generator: the shot's priors.
        coder: encodes the positives' faces as the head regresses them (e.g. ``DeltaCoder``).
        config: matching, mining, weights and the box and classification losses by name
            (:data:`PORT_LOSS`, :data:`PAPER_LOSS`, :data:`DSFD_LOSS`).
        cls_loss: a classification loss object instead of the one ``config.cls_loss`` names.
        terms: extra loss terms, e.g. :class:`~facescope.losses.pixel.PixelLoss`.

    Returns (when called):
        :class:`~facescope.losses.criteria.CriterionResult` with losses ``cls``, ``box``
        (``landmark`` when the head predicts landmarks, plus the terms') and per-image
        ``num_positive`` and ``min_positive_score``.
    """

    def __init__(
        self,
        anchor_generator: PriorGenerator,
        coder: TargetEncoder,
        config: MultiBoxLossConfig = PORT_LOSS,
        cls_loss: ClassificationLoss | None = None,
        terms: Sequence[CriterionTerm] = (),
    ) -> None:
        self.anchor_generator = anchor_generator
        self.coder = coder
        self.config = config
        self.assigner = MaxIoUAssigner(config.pos_iou, config.neg_iou, config.force_match_min_iou, config.retarget_below_floor)
        self.miner = OHEM(config.neg_pos_ratio, config.min_negatives)
        self.cls_loss: ClassificationLoss = cls_loss or config.classification_loss()
        self.terms = tuple(terms)

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        """Weighted losses of one shot's outputs for a ``[B, 3, H, W]`` batch with ``B`` targets."""
        flat = flatten_levels(outputs)
        dtype, device = flat.box_regs.dtype, flat.box_regs.device
        priors = self.anchor_generator.priors(input_hw, device, dtype)
        check_batch(flat, priors, targets, input_hw)
        assignment = assign_batch(self.assigner, priors, targets)
        faces = FaceBatch.from_targets(targets, device, dtype)
        positives = Positives.from_assignment(assignment, priors, faces)
        losses = self.losses(flat, assignment, positives, faces)
        for term in self.terms:
            losses.update(term(outputs, positives, faces))
        scores = self.cls_loss.scores(flat.cls_logits.detach())
        per_image = {NUM_POSITIVE: assignment.positive.sum(dim=1), MIN_POSITIVE_SCORE: min_positive_score(scores, assignment)}
        return CriterionResult(losses, per_image)

    def losses(self, flat: FlatOutputs, assignment: Assignment, positives: Positives, faces: FaceBatch) -> dict[str, Tensor]:
        """``{"cls", "box"[, "landmark"]}``, each already multiplied by its weight."""
        cfg = self.config
        # normalisers averaged over data-parallel ranks: DDP's mean of the ranks' gradients is then the gradient of
        # one process over the whole batch (a rank's own count would weigh its images by its share of positives)
        num_pos = mean_across_ranks(assignment.positive.sum().to(flat.box_regs.dtype)).clamp(min=1)
        cls_losses = self.cls_loss(flat.cls_logits, assignment.labels.clamp(min=0))
        kept = assignment.positive | self.miner(cls_losses, assignment.labels)
        box_sum = self.box_loss_sum(positives.take(flat.box_regs), positives, faces)
        losses = {"cls": cfg.cls_weight * (cls_losses[kept].sum() / num_pos), "box": cfg.box_weight * (box_sum / num_pos)}
        if flat.landmark_regs is not None:
            landmark_targets, weights = encode_landmark_targets(self.coder, positives, faces)
            num_with_landmarks = mean_across_ranks((weights.sum(dim=1) > 0).sum().to(flat.box_regs.dtype)).clamp(min=1)
            landmark_sum = smooth_l1_sum(positives.take(flat.landmark_regs), landmark_targets, cfg.smooth_l1_beta, weights)
            losses["landmark"] = cfg.landmark_weight * landmark_sum / num_with_landmarks
        return losses

    def box_loss_sum(self, box_regs: Tensor, positives: Positives, faces: FaceBatch) -> Tensor:
        """The box loss summed over the ``P`` positives: ``Tensor[P, 4]`` regressions -> scalar.

        ``smooth_l1`` compares the regressions with the faces' encodings; ``diou`` / ``giou`` decode the
        regressions over the positives' priors and compare the boxes with the faces in pixels.
        """
        face_boxes = faces.boxes[positives.face_rows]
        if self.config.box_loss in IOU_BOX_LOSSES:
            decoded = self.coder.decode_boxes(positives.priors, box_regs)
            return IOU_BOX_LOSSES[self.config.box_loss](decoded, face_boxes, reduction="sum")
        box_targets = self.coder.encode_boxes(positives.priors, face_boxes)
        return smooth_l1_sum(box_regs, box_targets, self.config.smooth_l1_beta)
