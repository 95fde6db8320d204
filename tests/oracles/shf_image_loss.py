"""Per-image reference of the SHF release's training rule (one image per GPU, as the Caffe release trains),
composed from the package's rule pieces; :class:`facescope.losses.shf.SHFCriterion` batches the same
rule and is tested to equal the mean of this reference over the images of a batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facescope.assign.shf_labels import POSITIVE, SHF_LABELS, SHFLabelConfig, shf_anchor_targets
from facescope.losses.shf import SHF_OHEM, SHFOHEMConfig, ohem_sample, shf_box_loss, shf_classification_loss
from facescope.ops.anchors import Priors
from facescope.ops.coders import DeltaCoder


def min_positive_score(labels: Tensor, face_probs: Tensor) -> Tensor:
    """Scalar: the lowest face probability over POSITIVE anchors (WPAS); 1.0 without any, so that the
    released rule (``all(scores >= threshold)``, true for an empty set) counts the image as easy."""
    scores = face_probs.detach()[labels == POSITIVE]
    return scores.min() if scores.numel() else face_probs.new_ones(())


@dataclass
class SHFImageLoss:
    """Loss terms and statistics of one image.

    Attributes:
        cls: scalar classification loss.
        box: scalar box loss.
        min_positive_score: scalar (detached) statistic for hard image mining.
        num_positive_anchors: positive anchors before sampling.
        sampled_labels: ``Tensor[N]`` labels after OHEM.
        regression: ``Tensor[N]`` bool, the anchors of the box loss.
    """

    cls: Tensor
    box: Tensor
    min_positive_score: Tensor
    num_positive_anchors: int
    sampled_labels: Tensor
    regression: Tensor


def shf_image_loss(
    cls_logits: Tensor,
    box_regs: Tensor,
    priors: Priors,
    coder: DeltaCoder,
    gt_boxes: Tensor,
    image_hw: tuple[int, int],
    labels_config: SHFLabelConfig = SHF_LABELS,
    ohem_config: SHFOHEMConfig = SHF_OHEM,
    gt_ignore: Tensor | None = None,
    sigma: float = 3.0,
) -> SHFImageLoss:
    """The release's losses for one image.

    Args:
        cls_logits: ``Tensor[N, 2]`` (background, face) logits of all anchors, levels concatenated.
        box_regs: ``Tensor[N, 4]`` deltas.
        priors: the ``N`` anchors (``SHF.anchor_generator.priors(input_hw)``).
        coder: the model's box coder (Faster R-CNN deltas: ``DeltaCoder((1.0, 1.0))``).
        gt_boxes: ``Tensor[M, 4]`` faces in input pixels.
        image_hw: valid (un-padded) image size for the border rule.
        labels_config, ohem_config, sigma: the rule's settings.
        gt_ignore: optional ``Tensor[M]`` bool faces to ignore.
    """
    if cls_logits.shape != (len(priors), 2) or box_regs.shape != (len(priors), 4):
        raise ValueError(
            f"cls_logits {tuple(cls_logits.shape)} / box_regs {tuple(box_regs.shape)} do not match "
            f"{len(priors)} priors"
        )
    targets = shf_anchor_targets(priors.boxes(), gt_boxes, image_hw, labels_config, gt_ignore)
    logits = cls_logits.detach().float()
    margin = logits[:, 1] - logits[:, 0]
    sampled = ohem_sample(targets.labels, margin, ohem_config)
    cls = shf_classification_loss(cls_logits, sampled)
    reg_index = targets.regression.nonzero(as_tuple=True)[0]
    matched = gt_boxes[targets.gt_indices[reg_index]].to(priors.centers.dtype)
    box_targets = coder.encode_boxes(priors.select(reg_index), matched).to(box_regs.dtype)
    box = shf_box_loss(box_regs[reg_index], box_targets, sigma)
    stat = min_positive_score(targets.labels, torch.softmax(logits, dim=1)[:, 1])
    return SHFImageLoss(cls, box, stat, int(targets.positive.sum()), sampled, targets.regression)


