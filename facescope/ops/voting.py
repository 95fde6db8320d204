"""Box voting on numpy arrays (and, through :func:`merge_detections`, the one greedy NMS of
:mod:`facescope.ops.nms`): the merge step after test-time augmentation.

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

from facescope.ops.nms import nms_numpy

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


class _Pool:
    """Boxes still to be voted on, in score order, as contiguous float64 columns that shrink as
    clusters leave (compacting keeps every iteration O(remaining) with few, cheap numpy calls)."""

    def __init__(self, boxes: np.ndarray, order: np.ndarray, pixel_offset: float) -> None:
        sorted_boxes = boxes[order].astype(np.float64)
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(sorted_boxes[:, i]) for i in range(4))
        self.offset = pixel_offset
        self.areas = (self.x2 - self.x1 + pixel_offset) * (self.y2 - self.y1 + pixel_offset)
        self.index = np.arange(order.size)  # positions in the sorted order

    def __len__(self) -> int:
        return int(self.index.size)

    def iou_with_top(self) -> np.ndarray:
        """IoU of the top box with every box in the pool (itself first), ``float64 [M]``.

        Term by term the sources' formula (clipped intersection with ``+offset`` widths, then
        ``inter / (area_top + area - inter)``), so the values equal a scalar transcription's.
        """
        inter_w = np.minimum(self.x2[0], self.x2) - np.maximum(self.x1[0], self.x1) + self.offset
        np.maximum(inter_w, 0.0, out=inter_w)
        inter_h = np.minimum(self.y2[0], self.y2) - np.maximum(self.y1[0], self.y1) + self.offset
        np.maximum(inter_h, 0.0, out=inter_h)
        inter = inter_w * inter_h
        with np.errstate(divide="ignore", invalid="ignore"):
            return inter / (self.areas[0] + self.areas - inter)

    def remove(self, leaving: np.ndarray) -> np.ndarray:
        """Drop the boxes where ``leaving`` is True; returns their sorted-order positions."""
        staying = ~leaving
        gone = self.index[leaving]
        self.index = self.index[staying]
        self.x1, self.y1, self.x2, self.y2 = self.x1[staying], self.y1[staying], self.x2[staying], self.y2[staying]
        self.areas = self.areas[staying]
        return gone


def _empty_result(with_landmarks: bool) -> MergeResult:
    landmarks = np.zeros((0, 5, 2), np.float32) if with_landmarks else None
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), landmarks


def _weighted_means(values: np.ndarray, weights: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Per-cluster ``sum(w * v) / sum(w)`` of ``values [M, D]``; clusters whose weights sum to 0
    (every score 0) get the plain mean instead of 0 / 0."""
    totals = np.bincount(labels, weights=weights, minlength=count)
    sizes = np.bincount(labels, minlength=count).astype(np.float64)
    zero = totals <= 0.0
    weights = np.where(zero[labels], 1.0, weights)
    totals = np.where(zero, sizes, totals)
    columns = [np.bincount(labels, weights=weights * values[:, d], minlength=count) for d in range(values.shape[1])]
    sums = np.stack(columns, axis=1)
    return sums / totals[:, None]


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
    pool = _Pool(boxes, order, pixel_offset)
    cap = max_detections if max_detections is not None else boxes.shape[0]
    # The loop only decides membership: cluster_of[i] = output slot of sorted box i (-1: discarded).
    cluster_of = np.full(boxes.shape[0], -1, np.int64)
    emitted = 0
    while len(pool) and emitted < cap:
        in_cluster = pool.iou_with_top() >= iou_thresh
        # The top box always belongs to its own cluster, even when its IoU with itself is
        # undefined (a degenerate box); otherwise the pool would never shrink.
        in_cluster[0] = True
        members = pool.remove(in_cluster)
        if members.size == 1:
            keep = singleton == "keep" or (singleton == "keep_last" and len(pool) == 0)
            if not keep:
                continue
        cluster_of[members] = emitted
        emitted += 1
    if emitted == 0:
        return _empty_result(with_landmarks)

    # Weighted means of all clusters at once; a kept singleton's mean is its own box (s * x / s may
    # differ from x in the last bit, so singletons are copied instead).
    members = np.flatnonzero(cluster_of >= 0)
    labels = cluster_of[members]
    sorted_scores = scores[order].astype(np.float64)
    weights = sorted_scores[members]
    merged_scores = np.zeros(emitted, np.float64)
    np.maximum.at(merged_scores, labels, weights)
    values = boxes[order][members].astype(np.float64)
    if with_landmarks:
        values = np.concatenate([values, landmarks[order][members].astype(np.float64).reshape(-1, 10)], axis=1)
    merged = _weighted_means(values, weights, labels, emitted)
    sizes = np.bincount(labels, minlength=emitted)
    single = sizes[labels] == 1
    merged[labels[single]] = values[single]
    merged_landmarks = merged[:, 4:].reshape(-1, 5, 2).astype(np.float32) if with_landmarks else None
    return merged[:, :4].astype(np.float32), merged_scores.astype(np.float32), merged_landmarks


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
    keep = nms_numpy(boxes, scores, iou_thresh, pixel_offset)
    if max_detections is not None:
        keep = keep[:max_detections]
    kept_landmarks = landmarks[keep].astype(np.float32) if landmarks is not None else None
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kept_landmarks
