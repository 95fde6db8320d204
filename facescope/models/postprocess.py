"""Family-independent post-processing of dense predictions: threshold, decode, NMS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from facescope.models.spec import PostprocessSettings
from facescope.ops.anchors import Priors
from facescope.ops.boxes import nms
from facescope.ops.coders import DeltaCoder, DistanceCoder
from facescope.structures import Detections

if TYPE_CHECKING:
    from facescope.models.base import DensePredictions


def decode_dense(
    predictions: DensePredictions,
    priors: Priors,
    coder: DistanceCoder | DeltaCoder,
    settings: PostprocessSettings,
) -> list[Detections]:
    """Turn activated dense predictions into detections, one :class:`Detections` per image.

    Only priors that pass the score threshold are decoded, so the cost is proportional to the
    number of candidates, not to the number of priors.

    Args:
        predictions: scores ``[B, N]``, box regressions ``[B, N, 4]``, landmarks ``[B, N, 10]``.
        priors: the ``N`` priors of the network input size.
        coder: turns regressions into pixels.
        settings: thresholds.

    Returns:
        Detections sorted by decreasing score, in network-input pixels.
    """
    results = []
    for b in range(predictions.scores.shape[0]):
        scores = predictions.scores[b]
        keep_mask = scores > settings.score_thresh if settings.strict_score else scores >= settings.score_thresh
        candidate_idxs = keep_mask.nonzero().squeeze(1)
        if settings.pre_nms_top_k is not None and candidate_idxs.numel() > settings.pre_nms_top_k:
            top = scores[candidate_idxs].topk(settings.pre_nms_top_k).indices
            candidate_idxs = candidate_idxs[top]
        selected = priors.select(candidate_idxs)
        boxes = coder.decode_boxes(selected, predictions.box_regs[b, candidate_idxs])
        candidate_scores = scores[candidate_idxs]
        keep = nms(boxes, candidate_scores, settings.nms_thresh, settings.nms_pixel_offset)
        if settings.max_detections is not None:
            keep = keep[: settings.max_detections]
        landmarks = None
        if predictions.landmark_regs is not None:
            kept_priors = selected.select(keep)
            landmarks = coder.decode_landmarks(kept_priors, predictions.landmark_regs[b, candidate_idxs[keep]])
        results.append(Detections(boxes[keep].float(), candidate_scores[keep].float(), _float(landmarks)))
    return results


def _float(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return tensor.float() if tensor is not None else None
