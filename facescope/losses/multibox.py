"""SSD-style multi-task "multibox" loss with online hard example mining (OHEM), as RetinaFace uses.

For every image: anchors are matched to faces by max IoU (:mod:`facescope.assign.max_iou`); the
classification loss is the 2-class softmax cross-entropy over the positives and the hardest
negatives (at most ``neg_pos_ratio`` per positive, chosen per image by their own loss); boxes and
landmarks are smooth-L1 on the positives' encoded targets. Sums are normalised by the number of
positives in the batch (landmarks: positives whose face has landmarks), as Pytorch_Retinaface's
``MultiBoxLoss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from facescope.assign.max_iou import NEGATIVE, POSITIVE, assign_max_iou
from facescope.losses.smooth_l1 import smooth_l1_sum
from facescope.ops.anchors import Priors
from facescope.ops.coders import DeltaCoder
from facescope.structures import FaceTargets


@dataclass(frozen=True)
class MultiBoxLossConfig:
    """Matching, mining and weighting of the multibox loss.

    Attributes:
        pos_iou, neg_iou, force_match_min_iou, retarget_below_floor: see
            :func:`~facescope.assign.max_iou.assign_max_iou`.
        neg_pos_ratio: hard negatives kept per positive, per image.
        min_negatives: hard negatives kept in an image even when it has fewer positives (0 = an
            image without faces contributes no classification loss, as the port).
        cls_weight, box_weight, landmark_weight: loss weights (the returned losses are weighted).
        smooth_l1_beta: smooth-L1 transition point.
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


# Pytorch_Retinaface: MultiBoxLoss(2, 0.35, True, 0, True, 7, 0.35, False), loss = 2.0 loc + conf + landm.
PORT_LOSS = MultiBoxLossConfig()
# The paper: IoU >= 0.5 positive, < 0.3 negative, OHEM 3:1, L = L_cls + 0.25 L_box + 0.1 L_pts.
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


@dataclass(frozen=True)
class MatchedTargets:
    """Per-anchor training targets of a batch of ``B`` images and ``N`` anchors.

    Attributes:
        labels: ``Tensor[B, N]`` int64: 1 face, 0 background, -1 ignored.
        box_targets: ``Tensor[B, N, 4]`` encoded boxes (zero where not positive).
        landmark_targets: ``Tensor[B, N, 10]`` encoded landmarks (zero where not annotated).
        landmark_weights: ``Tensor[B, N, 10]`` 1 where the anchor is positive and the point annotated.
        gt_indices: ``Tensor[B, N]`` matched face index in the image's targets.
    """

    labels: Tensor
    box_targets: Tensor
    landmark_targets: Tensor
    landmark_weights: Tensor
    gt_indices: Tensor


def match_targets(priors: Priors, coder: DeltaCoder, targets: list[FaceTargets], config: MultiBoxLossConfig) -> MatchedTargets:
    """Assign the anchors of every image and encode the matched faces."""
    anchor_boxes = priors.boxes()
    per_image = [_match_image(priors, anchor_boxes, coder, t.to(anchor_boxes.device), config) for t in targets]
    return MatchedTargets(*(torch.stack(parts) for parts in zip(*per_image)))


def _match_image(
    priors: Priors, anchor_boxes: Tensor, coder: DeltaCoder, target: FaceTargets, config: MultiBoxLossConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    num = anchor_boxes.shape[0]
    assignment = assign_max_iou(
        anchor_boxes,
        target.boxes.to(anchor_boxes.dtype),
        config.pos_iou,
        config.neg_iou,
        config.force_match_min_iou,
        config.retarget_below_floor,
    )
    box_targets = anchor_boxes.new_zeros((num, 4))
    landmark_targets = anchor_boxes.new_zeros((num, 10))
    landmark_weights = anchor_boxes.new_zeros((num, 10))
    pos = assignment.positive.nonzero().squeeze(1)
    if pos.numel():
        gt = assignment.gt_indices[pos]
        pos_priors = priors.select(pos)
        box_targets[pos] = coder.encode_boxes(pos_priors, target.boxes[gt].to(anchor_boxes.dtype))
        valid = target.landmark_valid[gt]  # [P, 5]
        points = torch.where(valid[..., None], target.landmarks[gt].to(anchor_boxes.dtype), pos_priors.centers[:, None, :])
        landmark_targets[pos] = coder.encode_landmarks(pos_priors, points)
        # (P, 5) -> (P, 5, 2) -> (P, 10): one weight per coordinate
        landmark_weights[pos] = valid[..., None].expand(-1, 5, 2).reshape(-1, 10).to(anchor_boxes.dtype)
    return assignment.labels, box_targets, landmark_targets, landmark_weights, assignment.gt_indices


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


def multibox_loss(
    cls_logits: Tensor,
    box_regs: Tensor,
    landmark_regs: Tensor | None,
    matched: MatchedTargets,
    config: MultiBoxLossConfig,
) -> dict[str, Tensor]:
    """Weighted classification, box and landmark losses of a batch.

    Args:
        cls_logits: ``Tensor[B, N, 2]`` (background, face) logits.
        box_regs: ``Tensor[B, N, 4]`` encoded boxes.
        landmark_regs: ``Tensor[B, N, 10]`` encoded landmarks, or None.
        matched: targets from :func:`match_targets`.
        config: weights and OHEM settings.

    Returns:
        ``{"cls", "box"[, "landmark"]}``, each already multiplied by its weight; their
        sum is the training loss.
    """
    positive = matched.labels == POSITIVE
    num_pos = positive.sum().clamp(min=1).to(box_regs.dtype)
    # (B, N, 2) -> (B*N, 2) -> (B, N)
    ce = F.cross_entropy(cls_logits.reshape(-1, 2), matched.labels.clamp(min=0).reshape(-1), reduction="none")
    ce = ce.reshape(matched.labels.shape)
    hard_negative = ohem_negative_mask(ce, matched.labels, config.neg_pos_ratio, config.min_negatives)
    loss_cls = ce[positive | hard_negative].sum() / num_pos
    loss_box = smooth_l1_sum(box_regs[positive], matched.box_targets[positive], config.smooth_l1_beta) / num_pos
    losses = {"cls": config.cls_weight * loss_cls, "box": config.box_weight * loss_box}
    if landmark_regs is not None:
        weights = matched.landmark_weights[positive]
        num_with_landmarks = (weights.sum(dim=1) > 0).sum().clamp(min=1).to(box_regs.dtype)
        landmark_sum = smooth_l1_sum(
            landmark_regs[positive], matched.landmark_targets[positive], config.smooth_l1_beta, weights
        )
        losses["landmark"] = config.landmark_weight * landmark_sum / num_with_landmarks
    return losses
