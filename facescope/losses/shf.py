"""SHF training losses: anchor-level OHEM, softmax classification, smooth-L1 boxes, and the per-image
statistic that drives hard image mining, batched in :class:`SHFCriterion` (the per-image reference it is
tested against is ``tests/oracles/shf_image_loss.py``).

The released model (``bairdzhang/smallhardface`` @76fa1d8, ``multi_layer_anchor_layer.py`` and the
train prototxt) trains one image per GPU with:

* **OHEM** (classification only), from the current forward pass: at most ``256 * 0.25 = 64``
  positives; when there are more, the 64 with the **lowest face probability** are kept. Then
  ``256 - #positives kept`` negatives with the **lowest background probability** (the most face-like
  background) are kept. Everything else is ignored. With 2-way softmax both orders are the order of
  the face-vs-background logit margin ``l_face - l_bg``; :func:`ohem_sample` ranks by any score that
  is monotone in the face probability, and the criterion passes that margin, which unlike the
  probabilities does not saturate into ties.
* **classification**: softmax cross-entropy averaged over the sampled (non-ignored) anchors
  (``SoftmaxWithLoss``, ``normalize: true``; 0 when none).
* **boxes**: smooth-L1 with ``sigma = 3`` (``beta = 1 / sigma^2 = 1/9``) on Faster R-CNN deltas of
  every anchor with best IoU ``>= 0.3``, summed over the 4 coordinates and divided by the number of
  such anchors (``bbox_outside_weights = 1 / #anchors``; 0 when none).
* **easy image**: an image is easy when every positive anchor (before OHEM) has face probability
  ``>= 0.85``; the statistic is the minimum face probability over the positive anchors.

The batch loss of the release is the mean of these per-image losses (``iter_size`` and GPU
gradient averaging over 8 single-image passes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from facescope.assign.labels import Assignment
from facescope.assign.shf_labels import IGNORE, NEGATIVE, POSITIVE, SHFLabelConfig, shf_anchor_targets
from facescope.losses.result import MIN_POSITIVE_SCORE, NUM_POSITIVE, CriterionResult
from facescope.losses.targets import FaceBatch, PriorGenerator, check_batch, flatten_levels
from facescope.losses.targets import min_positive_score
from facescope.ops.anchors import Priors
from facescope.ops.coders import DeltaCoder
from facescope.ops.scores import scores_from_logits

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseOutputs
    from facescope.structures import FaceTargets

@dataclass(frozen=True)
class SHFOHEMConfig:
    """Anchor sampling of the release (``ANCHORS_PER_BATCH``, ``ANCHOR_FG_FRACTION`` x it)."""

    anchors_per_image: int = 256
    max_positives: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.max_positives <= self.anchors_per_image:
            raise ValueError(
                f"need 0 <= max_positives <= anchors_per_image, got {self.max_positives} and {self.anchors_per_image}"
            )


SHF_OHEM = SHFOHEMConfig()


def ohem_sample(labels: Tensor, face_scores: Tensor, config: SHFOHEMConfig = SHF_OHEM) -> Tensor:
    """Keep the hardest anchors of one image; the others become IGNORE.

    Args:
        labels: ``Tensor[N]`` int64 POSITIVE / NEGATIVE / IGNORE.
        face_scores: ``Tensor[N]`` face probability, or any score monotone in it (e.g. the logit
            margin ``l_face - l_bg``); only the order matters.
        config: sample size and positive cap.

    Returns:
        ``Tensor[N]`` int64 sampled labels: at most ``max_positives`` positives (lowest scores kept)
        and at most ``anchors_per_image - #positives`` negatives (highest scores kept). Equal scores
        are taken in index order, so the result is deterministic.
    """
    if labels.shape != face_scores.shape or labels.dim() != 1:
        raise ValueError(f"labels {tuple(labels.shape)} and face_scores {tuple(face_scores.shape)} must be [N]")
    sampled = labels.clone()
    scores = face_scores.detach()
    positives = (labels == POSITIVE).nonzero(as_tuple=True)[0]
    if positives.numel() > config.max_positives:
        order = torch.sort(scores[positives], stable=True).indices  # ascending: least face-like first
        sampled[positives[order[config.max_positives :]]] = IGNORE
    num_negatives = config.anchors_per_image - int((sampled == POSITIVE).sum())
    negatives = (labels == NEGATIVE).nonzero(as_tuple=True)[0]
    if negatives.numel() > num_negatives:
        order = torch.sort(scores[negatives], descending=True, stable=True).indices  # most face-like first
        sampled[negatives[order[num_negatives:]]] = IGNORE
    return sampled


def shf_classification_loss(cls_logits: Tensor, sampled_labels: Tensor) -> Tensor:
    """Softmax cross-entropy of ``Tensor[N, 2]`` logits over the non-ignored ``Tensor[N]`` labels,
    averaged over them (0, still attached to the graph, when none)."""
    valid = sampled_labels != IGNORE
    losses = F.cross_entropy(cls_logits[valid], sampled_labels[valid], reduction="sum")
    return losses / max(int(valid.sum()), 1)


def shf_box_loss(box_regs: Tensor, box_targets: Tensor, sigma: float = 3.0) -> Tensor:
    """Caffe's ``SmoothL1Loss`` with ``sigma`` over ``K`` selected anchors, averaged over the anchors.

    ``f(x) = 0.5 (sigma x)^2`` if ``|x| < 1 / sigma^2`` else ``|x| - 0.5 / sigma^2``, summed over the
    4 deltas and all anchors, divided by ``K`` (0, still attached, when ``K = 0``).

    Args:
        box_regs: ``Tensor[K, 4]`` predicted deltas of the regression anchors.
        box_targets: ``Tensor[K, 4]`` target deltas.
        sigma: 3 in the release.
    """
    losses = F.smooth_l1_loss(box_regs, box_targets, reduction="sum", beta=1.0 / (sigma * sigma))
    return losses / max(box_regs.shape[0], 1)


@dataclass(frozen=True)
class SHFLossConfig:
    """The release's training-rule settings (a recipe's ``loss:`` section overrides them by name).

    Attributes:
        positive_iou, negative_iou, regression_iou, allowed_border: anchor labels
            (:class:`~facescope.assign.shf_labels.SHFLabelConfig`); ``allowed_border`` None = no border rule.
        anchors_per_image, max_positives: anchor-level OHEM (:class:`SHFOHEMConfig`).
        sigma: smooth-L1 sigma of the box loss.
        cls_weight, box_weight: weights of the two terms (1, 1 in the release).
    """

    positive_iou: float = 0.5
    negative_iou: float = 0.3
    regression_iou: float = 0.3
    allowed_border: float | None = 0.0
    anchors_per_image: int = 256
    max_positives: int = 64
    sigma: float = 3.0
    cls_weight: float = 1.0
    box_weight: float = 1.0

    def __post_init__(self) -> None:
        self.labels()  # the sub-configs check their ranges
        self.ohem()
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    def labels(self) -> SHFLabelConfig:
        return SHFLabelConfig(self.positive_iou, self.negative_iou, self.regression_iou, self.allowed_border)

    def ohem(self) -> SHFOHEMConfig:
        return SHFOHEMConfig(self.anchors_per_image, self.max_positives)


SHF_LOSS = SHFLossConfig()


class SHFCriterion:
    """SHF's training criterion over a batch: the release's per-image losses, averaged over the images.

    For every image ``b``: anchor labels (no forced match, border anchors ignored against the image's
    own un-padded size ``targets[b].image_hw``, or the whole input when it is None), OHEM over the
    current scores, softmax cross-entropy averaged over the sampled anchors, sigma-3 smooth-L1 averaged
    over the regression anchors; the batch terms are the means of the per-image terms (the release
    averages 8 single-image passes). Labels run per image (each has its own border); the losses, the
    box encoding and the statistics are computed for the whole batch at once.

    Returns (when called): ``losses`` ``{"cls", "box"}`` (weighted) and ``per_image``
    ``{NUM_POSITIVE, MIN_POSITIVE_SCORE}`` (``Tensor[B]``, positives before OHEM; the lowest face
    probability among them, 1.0 without positives), which the hard image miner reads.

    Example:
        >>> from facescope.models.shf import shf_vgg16
        >>> model = shf_vgg16()
        >>> criterion = SHFCriterion(model.anchor_generator, model.coder, SHF_LOSS)
        >>> sorted(criterion(model(torch.zeros(1, 3, 64, 64)), [FaceTargets.from_boxes(torch.zeros(0, 4))], (64, 64)).losses)
        ['box', 'cls']
    """

    def __init__(self, anchor_generator: PriorGenerator, coder: DeltaCoder, config: SHFLossConfig = SHF_LOSS) -> None:
        self.anchor_generator = anchor_generator
        self.coder = coder
        self.config = config

    def assign(self, priors: Priors, targets: Sequence[FaceTargets], input_hw: tuple[int, int]) -> tuple[Assignment, Tensor]:
        """``[B, N]`` labels (before OHEM) and the ``Tensor[B, N]`` bool regression mask."""
        device = priors.centers.device
        anchors = priors.boxes()
        labels_config = self.config.labels()
        per_image = [
            shf_anchor_targets(
                anchors, t.boxes.to(device, anchors.dtype), _valid_hw(t, input_hw), labels_config, _ignore(t, device)
            )
            for t in targets
        ]
        return Assignment.stack(per_image), torch.stack([a.regression for a in per_image])

    def __call__(self, outputs: DenseOutputs, targets: list[FaceTargets], input_hw: tuple[int, int]) -> CriterionResult:
        flat = flatten_levels(outputs)
        priors = self.anchor_generator.priors(input_hw, flat.box_regs.device, flat.box_regs.dtype)
        check_batch(flat, priors, targets, input_hw)
        assignment, regression = self.assign(priors, targets, input_hw)
        logits = flat.cls_logits.detach().float()
        margin = logits[..., 1] - logits[..., 0]  # monotone in the face probability, never saturates
        ohem = self.config.ohem()
        sampled = torch.stack([ohem_sample(labels, m, ohem) for labels, m in zip(assignment.labels, margin)])
        cls = _per_image_mean_ce(flat.cls_logits, sampled).mean()
        box = self._box_loss(flat.box_regs, priors, assignment, regression, targets).mean()
        face_probs = scores_from_logits(logits, "softmax")
        per_image = {
            NUM_POSITIVE: assignment.positive.sum(dim=1).to(face_probs.dtype),
            MIN_POSITIVE_SCORE: min_positive_score(face_probs, assignment),
        }
        losses = {"cls": self.config.cls_weight * cls, "box": self.config.box_weight * box}
        return CriterionResult(losses, per_image)

    def _box_loss(
        self, box_regs: Tensor, priors: Priors, assignment: Assignment, regression: Tensor, targets: Sequence[FaceTargets]
    ) -> Tensor:
        """``Tensor[B]``: each image's smooth-L1 summed over its regression anchors' deltas / their number."""
        batch = box_regs.shape[0]
        image_idxs, prior_idxs = regression.nonzero(as_tuple=True)
        faces = FaceBatch.from_targets(targets, box_regs.device, priors.centers.dtype)
        face_rows = faces.first_row[image_idxs] + assignment.gt_indices[image_idxs, prior_idxs]
        encoded = self.coder.encode_boxes(priors.select(prior_idxs), faces.boxes[face_rows]).to(box_regs.dtype)
        beta = 1.0 / (self.config.sigma * self.config.sigma)
        per_anchor = F.smooth_l1_loss(box_regs[image_idxs, prior_idxs], encoded, reduction="none", beta=beta).sum(dim=1)
        sums = box_regs.new_zeros(batch).index_add(0, image_idxs, per_anchor)
        counts = regression.sum(dim=1).clamp(min=1).to(box_regs.dtype)
        return sums / counts


def _per_image_mean_ce(cls_logits: Tensor, sampled: Tensor) -> Tensor:
    """``Tensor[B]``: softmax cross-entropy of ``[B, N, 2]`` logits averaged over each image's sampled
    (non-ignored) ``[B, N]`` labels; 0 for an image without any."""
    valid = sampled != IGNORE
    losses = F.cross_entropy(cls_logits.flatten(0, 1), sampled.clamp(min=0).flatten(), reduction="none")
    losses = losses.view_as(sampled) * valid
    return losses.sum(dim=1) / valid.sum(dim=1).clamp(min=1).to(losses.dtype)


def _valid_hw(target: FaceTargets, input_hw: tuple[int, int]) -> tuple[int, int]:
    """The image's own size inside the (possibly padded) batch input, for the border rule."""
    return tuple(target.image_hw) if target.image_hw is not None else input_hw  # type: ignore[return-value]


def _ignore(target: FaceTargets, device: torch.device) -> Tensor | None:
    return target.ignore.to(device) if target.ignore is not None else None


__all__ = [
    "MIN_POSITIVE_SCORE",
    "SHF_LOSS",
    "SHF_OHEM",
    "SHFCriterion",
    "SHFLossConfig",
    "SHFOHEMConfig",
    "ohem_sample",
    "shf_box_loss",
    "shf_classification_loss",
]
