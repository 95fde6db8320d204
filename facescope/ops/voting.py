"""Box voting and greedy NMS on numpy arrays: the merge step after test-time augmentation.

Both functions take the data contract in numpy form (``boxes float [K, 4]`` x1, y1, x2, y2,
``scores float [K]``, ``landmarks float [K, 5, 2]`` or None) and import no torch, so the
onnxruntime path and the torch path merge with one algorithm.

Box voting follows the skeleton shared by the S3FD, DSFD, PyramidBox, SHF and insightface
RetinaFace evaluation scripts (``../shared/reference/dsfd_asfd_shf_eval.md`` §4.1):

1. sort by score, descending (ties keep their input order: a stable sort, so results are
   deterministic; the sources use numpy's unstable ``argsort`` and leave ties unspecified);
2. while boxes remain: take the top box, compute its IoU with every remaining box (itself
   included) under the "+1" pixel convention (``pixel_offset=1``), cluster = IoU >= threshold,
   remove the cluster from the pool;
3. a cluster of two or more boxes gives one box: the score-weighted mean of the coordinates
   (weights = the scores themselves), with the cluster's maximum score;
4. a singleton cluster is dropped (S3FD, DSFD), kept only when it is the last box of the pool
   (PyramidBox, SHF, insightface RetinaFace), or always kept (the toolkit's ``"keep"``);
5. the first ``max_detections`` merged boxes are returned (750 in S3FD/DSFD/PyramidBox/RetinaFace,
   no cap in SHF). Empty input gives empty output (the sources crash or invent a dummy box).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

SingletonPolicy = Literal["drop", "keep_last", "keep"]
SINGLETON_POLICIES: tuple[str, ...] = ("drop", "keep_last", "keep")

MergeResult = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def _check_inputs(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None) -> None:
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [K, 4], got {list(boxes.shape)}")
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must have shape [{boxes.shape[0]}], got {list(scores.shape)}")
    if landmarks is not None and landmarks.shape != (boxes.shape[0], 5, 2):
        raise ValueError(f"landmarks must have shape [{boxes.shape[0]}, 5, 2], got {list(landmarks.shape)}")
    if scores.size and not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray, pixel_offset: float) -> np.ndarray:
    """IoU of ``box [4]`` with ``boxes [M, 4]`` -> ``[M]``; widths are ``x2 - x1 + pixel_offset``.

    The operations follow the sources' formula term by term (area of both, clipped intersection,
    ``inter / (area_a + area_b - inter)``) so that float64 results match a scalar transcription.
    """
    areas = (boxes[:, 2] - boxes[:, 0] + pixel_offset) * (boxes[:, 3] - boxes[:, 1] + pixel_offset)
    area = (box[2] - box[0] + pixel_offset) * (box[3] - box[1] + pixel_offset)
    inter_w = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + pixel_offset)
    inter_h = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + pixel_offset)
    inter = inter_w * inter_h
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area + areas - inter)


def _empty_result(with_landmarks: bool) -> MergeResult:
    landmarks = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), landmarks


def box_voting(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray | None,
    iou_thresh: float,
    singleton: SingletonPolicy,
    max_detections: int | None,
    pixel_offset: float = 1.0,
) -> MergeResult:
    """Merge overlapping detections into score-weighted means (module docstring has the algorithm).

    Args:
        boxes: ``float [K, 4]`` x1, y1, x2, y2 (the candidates of every pass, in original pixels).
        scores: ``float [K]``, non-negative (they are the averaging weights).
        landmarks: ``float [K, 5, 2]`` or None; averaged with the same weights as the boxes.
        iou_thresh: a box joins the top box's cluster when their IoU is ``>= iou_thresh``.
        singleton: what happens to a cluster of one box: ``"drop"``, ``"keep_last"`` (kept only
            when no box is left in the pool after it) or ``"keep"``.
        max_detections: keep the first this many merged boxes (None: no cap).
        pixel_offset: ``1.0`` is the "+1" width convention of every published voting script;
            ``0.0`` is the continuous convention.

    Returns:
        ``(boxes float32 [N, 4], scores float32 [N], landmarks float32 [N, 5, 2] or None)``,
        scores in descending order.
    """
    if singleton not in SINGLETON_POLICIES:
        raise ValueError(f"singleton must be one of {SINGLETON_POLICIES}, got {singleton!r}")
    if max_detections is not None and max_detections < 0:
        raise ValueError(f"max_detections must be >= 0 or None, got {max_detections}")
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    _check_inputs(boxes, scores, landmarks)
    if scores.size and float(scores.min()) < 0.0:
        raise ValueError(f"box voting weights boxes by their scores, which must be >= 0; got {float(scores.min())}")
    with_landmarks = landmarks is not None
    if boxes.shape[0] == 0 or max_detections == 0:
        return _empty_result(with_landmarks)

    order = np.argsort(-scores.astype(np.float64), kind="stable")
    pool_boxes = boxes[order].astype(np.float64)
    pool_scores = scores[order].astype(np.float64)
    pool_landmarks = landmarks[order].astype(np.float64).reshape(-1, 10) if with_landmarks else None
    # Indices into the sorted arrays of the boxes still in the pool, in score order.
    remaining = np.arange(pool_boxes.shape[0])
    out_boxes: list[np.ndarray] = []
    out_scores: list[float] = []
    out_landmarks: list[np.ndarray] = []
    cap = max_detections if max_detections is not None else pool_boxes.shape[0]

    while remaining.size and len(out_boxes) < cap:
        top = remaining[0]
        in_cluster = _iou_one_to_many(pool_boxes[top], pool_boxes[remaining], pixel_offset) >= iou_thresh
        # The top box always belongs to its own cluster, even when its IoU with itself is
        # undefined (a degenerate box); otherwise the loop would never shrink the pool.
        in_cluster[0] = True
        cluster = remaining[in_cluster]
        remaining = remaining[~in_cluster]
        if cluster.size == 1:
            keep = singleton == "keep" or (singleton == "keep_last" and remaining.size == 0)
            if keep:
                out_boxes.append(pool_boxes[top])
                out_scores.append(float(pool_scores[top]))
                if pool_landmarks is not None:
                    out_landmarks.append(pool_landmarks[top])
            continue
        weights = pool_scores[cluster]
        total = weights.sum()
        if total <= 0.0:  # every score is zero: an unweighted mean instead of 0 / 0
            weights = np.ones_like(weights)
            total = float(weights.size)
        out_boxes.append((pool_boxes[cluster] * weights[:, None]).sum(axis=0) / total)
        out_scores.append(float(pool_scores[cluster].max()))
        if pool_landmarks is not None:
            out_landmarks.append((pool_landmarks[cluster] * weights[:, None]).sum(axis=0) / total)

    if not out_boxes:
        return _empty_result(with_landmarks)
    merged_landmarks = np.stack(out_landmarks).reshape(-1, 5, 2).astype(np.float32) if with_landmarks else None
    return np.stack(out_boxes).astype(np.float32), np.asarray(out_scores, np.float32), merged_landmarks


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float, pixel_offset: float = 0.0) -> np.ndarray:
    """Greedy NMS in numpy; returns kept indices, highest score first.

    A box is suppressed when its IoU with a kept, higher-scoring box is ``> iou_thresh`` (the
    torchvision rule). Ties in score are visited in input order.

    Args:
        boxes: ``float [K, 4]``.
        scores: ``float [K]``.
        iou_thresh: suppression threshold.
        pixel_offset: ``1.0`` for the "+1" width convention, ``0.0`` continuous.

    Returns:
        ``int64 [N]`` indices into ``boxes``.
    """
    boxes = np.asarray(boxes, np.float64)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"expected boxes [K, 4] and scores [K], got {list(boxes.shape)} and {list(scores.shape)}")
    remaining = np.argsort(-scores.astype(np.float64), kind="stable")
    keep: list[int] = []
    while remaining.size:
        top = remaining[0]
        keep.append(int(top))
        overlap = _iou_one_to_many(boxes[top], boxes[remaining[1:]], pixel_offset)
        remaining = remaining[1:][~(overlap > iou_thresh)]
    return np.asarray(keep, np.int64)


def merge_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray | None,
    method: Literal["nms", "box_voting"],
    iou_thresh: float,
    singleton: SingletonPolicy = "keep",
    max_detections: int | None = None,
    pixel_offset: float = 1.0,
) -> MergeResult:
    """One merge over candidates: NMS (keep the top box of each overlap group) or box voting."""
    if method == "box_voting":
        return box_voting(boxes, scores, landmarks, iou_thresh, singleton, max_detections, pixel_offset)
    if method != "nms":
        raise ValueError(f"merge method must be 'nms' or 'box_voting', got {method!r}")
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    _check_inputs(boxes, scores, landmarks)
    keep = greedy_nms(boxes, scores, iou_thresh, pixel_offset)
    if max_detections is not None:
        keep = keep[:max_detections]
    kept_landmarks = landmarks[keep].astype(np.float32) if landmarks is not None else None
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kept_landmarks
