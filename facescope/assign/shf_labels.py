"""SHF anchor labels and regression selection (the release's ``MultiLayerAnchorLayer``).

Rules of ``bairdzhang/smallhardface`` @76fa1d8 (``lib/layers/multi_layer_anchor_layer.py``,
``configs/default.toml``), for the anchors of one image:

1. Border: an anchor that crosses the image by more than ``allowed_border`` pixels (0 in the
   release) is ignored (label -1, no regression). The image is the valid, un-padded one (``im_info``,
   after resizing and cropping). If no anchor at all is inside, every anchor is used (as the release).
2. Labels from each anchor's best IoU over the faces: ``< 0.3`` negative, ``>= 0.5`` positive, in
   between ignored. There is **no** forced match of a face's best anchor (unlike Faster R-CNN / SSD),
   so a face that no anchor overlaps by 0.5 (too small, too large for the 16-64 anchors, or
   off-grid) gets no positive anchor: it simply takes no part in classification. The release keeps
   the negative label of anchors lying inside such a (large) face when their IoU is below 0.3.
3. Regression on every inside anchor whose best IoU is ``>= 0.3``, towards that face, independently
   of the classification sampling (OHEM is applied to classification only).

Boxes are in facescope's continuous pixels (x2 = x1 + width). The release works in inclusive pixels
with ``+1`` widths; its IoUs are the continuous IoUs of the same boxes, and its border test
``x2_inclusive < W + border`` is ``x2 <= W + border`` for its integer anchors.

Labels: ``POSITIVE = 1``, ``NEGATIVE = 0``, ``IGNORE = -1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facescope.assign.labels import IGNORE, NEGATIVE, POSITIVE, Assignment  # the one label convention
from facescope.ops.boxes import box_iou


@dataclass(frozen=True)
class SHFLabelConfig:
    """Thresholds of the release (``ANCHOR_POSITIVE_OVERLAP``, ``ANCHOR_NEGATIVE_OVERLAP``,
    ``ANCHOR_REGRESSION_OVERLAP``, the anchor layer's ``allowed_border``).

    Attributes:
        positive_iou: positive when the best IoU is ``>= positive_iou``.
        negative_iou: negative when the best IoU is ``< negative_iou``.
        regression_iou: box regression on anchors whose best IoU is ``>= regression_iou``.
        allowed_border: pixels an anchor may cross the image border by; None = no border rule.
        ignore_iof: with ``gt_ignore`` faces (not in the release): a would-be negative anchor whose
            area lies ``>= ignore_iof`` inside an ignored face is ignored instead.
    """

    positive_iou: float = 0.5
    negative_iou: float = 0.3
    regression_iou: float = 0.3
    allowed_border: float | None = 0.0
    ignore_iof: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.negative_iou <= self.positive_iou <= 1.0:
            raise ValueError(
                f"need 0 <= negative_iou <= positive_iou <= 1, got {self.negative_iou} and {self.positive_iou}"
            )
        if not 0.0 <= self.regression_iou <= 1.0:
            raise ValueError(f"regression_iou must be in [0, 1], got {self.regression_iou}")


SHF_LABELS = SHFLabelConfig()


@dataclass(frozen=True)
class SHFAnchorTargets(Assignment):
    """Training targets of ``N`` anchors against ``M`` faces of one image.

    Attributes:
        labels: ``Tensor[N]`` int64, POSITIVE / NEGATIVE / IGNORE (before OHEM sampling).
        gt_indices: ``Tensor[N]`` int64, the face of best IoU (0 when there is no face; only
            meaningful where ``labels == POSITIVE`` or ``regression``).
        max_ious: ``Tensor[N]`` that best IoU (0 for anchors outside the border and without faces).
        inside: ``Tensor[N]`` bool, anchors that pass the border rule.
        regression: ``Tensor[N]`` bool, anchors that take part in the box loss.
        matched_faces: ``Tensor[M]`` bool, faces that own at least one positive anchor.
    """

    inside: Tensor
    regression: Tensor
    matched_faces: Tensor


def anchors_inside(anchors: Tensor, image_hw: tuple[int, int], allowed_border: float | None) -> Tensor:
    """``Tensor[N, 4]`` anchors -> ``Tensor[N]`` bool: not crossing the ``(height, width)`` image by
    more than ``allowed_border`` pixels. None disables the rule (all True); if no anchor is inside,
    all are returned as inside (the release's fallback for images smaller than every anchor)."""
    num = anchors.shape[0]
    if allowed_border is None:
        return torch.ones(num, dtype=torch.bool, device=anchors.device)
    height, width = image_hw
    border = float(allowed_border)
    inside = (
        (anchors[:, 0] >= -border)
        & (anchors[:, 1] >= -border)
        & (anchors[:, 2] <= width + border)
        & (anchors[:, 3] <= height + border)
    )
    if not bool(inside.any()):
        return torch.ones(num, dtype=torch.bool, device=anchors.device)
    return inside


def shf_anchor_targets(
    anchors: Tensor,
    gt_boxes: Tensor,
    image_hw: tuple[int, int],
    config: SHFLabelConfig = SHF_LABELS,
    gt_ignore: Tensor | None = None,
) -> SHFAnchorTargets:
    """Label ``Tensor[N, 4]`` anchors of one image against ``Tensor[M, 4]`` faces (x1, y1, x2, y2).

    Args:
        anchors: all anchors of the image, in the order of the model's outputs.
        gt_boxes: the image's faces in the same (network input) pixels; ``M`` may be 0.
        image_hw: ``(height, width)`` of the valid image, without the padding to a multiple of 16.
        config: thresholds.
        gt_ignore: optional ``Tensor[M]`` bool, faces to exclude from positives and regression;
            anchors mostly inside them (``config.ignore_iof``) are not negatives either.

    Returns:
        :class:`SHFAnchorTargets`.
    """
    if anchors.dim() != 2 or anchors.shape[1] != 4:
        raise ValueError(f"anchors must be [N, 4], got {tuple(anchors.shape)}")
    if gt_boxes.dim() != 2 or gt_boxes.shape[1] != 4:
        raise ValueError(f"gt_boxes must be [M, 4], got {tuple(gt_boxes.shape)}")
    num_anchors, num_faces = anchors.shape[0], gt_boxes.shape[0]
    device = anchors.device
    if gt_ignore is None:
        gt_ignore = torch.zeros(num_faces, dtype=torch.bool, device=device)
    elif gt_ignore.shape != (num_faces,):
        raise ValueError(f"gt_ignore must be [{num_faces}] for {num_faces} faces, got {tuple(gt_ignore.shape)}")
    gt_ignore = gt_ignore.to(device=device, dtype=torch.bool)

    inside = anchors_inside(anchors, image_hw, config.allowed_border)
    gt_indices = torch.zeros(num_anchors, dtype=torch.int64, device=device)
    max_ious = anchors.new_zeros(num_anchors)
    valid_faces = (~gt_ignore).nonzero(as_tuple=True)[0]
    if valid_faces.numel() > 0:
        overlaps = box_iou(gt_boxes[valid_faces].to(anchors.dtype), anchors)  # [M_valid, N]
        best = overlaps.argmax(dim=0)  # the first face on ties, as numpy's argmax in the release
        max_ious = overlaps.gather(0, best[None]).squeeze(0)
        gt_indices = valid_faces[best]
    max_ious = torch.where(inside, max_ious, torch.zeros_like(max_ious))

    labels = torch.full((num_anchors,), IGNORE, dtype=torch.int64, device=device)
    labels[inside & (max_ious < config.negative_iou)] = NEGATIVE
    labels[inside & (max_ious >= config.positive_iou)] = POSITIVE
    if bool(gt_ignore.any()):
        covered = _max_inside_fraction(anchors, gt_boxes[gt_ignore].to(anchors.dtype)) >= config.ignore_iof
        labels[(labels == NEGATIVE) & covered] = IGNORE
    if valid_faces.numel() > 0:
        regression = inside & (max_ious >= config.regression_iou)
    else:
        regression = torch.zeros_like(inside)  # nothing to regress to

    matched_faces = torch.zeros(num_faces, dtype=torch.bool, device=device)
    matched_faces[gt_indices[labels == POSITIVE]] = True
    return SHFAnchorTargets(labels, gt_indices, max_ious, inside, regression, matched_faces)


def _max_inside_fraction(anchors: Tensor, boxes: Tensor) -> Tensor:
    """``Tensor[N]``: the largest fraction of each anchor's area covered by one of ``boxes``."""
    top_left = torch.maximum(anchors[:, None, :2], boxes[None, :, :2])
    bottom_right = torch.minimum(anchors[:, None, 2:], boxes[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)  # [N, K]
    area = (anchors[:, 2:] - anchors[:, :2]).clamp(min=0).prod(dim=-1).clamp(min=1e-6)
    return (inter / area[:, None]).max(dim=1).values


__all__ = [
    "IGNORE",
    "NEGATIVE",
    "POSITIVE",
    "SHF_LABELS",
    "SHFAnchorTargets",
    "SHFLabelConfig",
    "anchors_inside",
    "shf_anchor_targets",
]
