"""Five-point landmark accuracy: NME normalised by the face box size and the CED curve
(RetinaFace §4.5: "the face box size sqrt(W x H) as the normalisation distance"; failure rate =
share of faces with NME above 10%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FAILURE_THRESHOLD = 0.10


def landmark_nme(
    pred: np.ndarray, gt: np.ndarray, gt_boxes: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-face normalised mean error.

    Args:
        pred, gt: ``ndarray[N, 5, 2]`` points.
        gt_boxes: ``ndarray[N, 4]`` x1 y1 x2 y2 ground-truth boxes (normaliser ``sqrt(w * h)``).
        valid: ``ndarray[N, 5]`` bool, points that are annotated (default all).

    Returns:
        ``ndarray[N]``: mean over valid points of ``|pred - gt| / sqrt(w h)``; NaN for a face
        without any valid point or with an empty box.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 5, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5, 2)
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.ones(gt.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool).reshape(-1, 5)
    distances = np.linalg.norm(pred - gt, axis=2)  # [N, 5]
    size = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))  # [N]
    counts = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(valid, distances, 0.0).sum(axis=1) / counts
        nme = mean / size
    return np.where((counts > 0) & (size > 0), nme, np.nan)


def per_point_nme(pred: np.ndarray, gt: np.ndarray, gt_boxes: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``ndarray[5]``: mean normalised error of each landmark over the faces where it is annotated
    (RetinaFace Fig. 7a)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 5, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 5, 2)
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.ones(gt.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool).reshape(-1, 5)
    size = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:, None]  # [N, 1]
    errors = np.linalg.norm(pred - gt, axis=2) / size  # [N, 5]
    with np.errstate(invalid="ignore"):
        return np.where(valid, errors, 0.0).sum(axis=0) / valid.sum(axis=0)


def ced_curve(nme: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: share of faces with ``NME <= x`` for each ``x``.

    NaN entries (faces without landmarks) are left out; ``inf`` (e.g. an undetected face counted
    as a failure) stays in the denominator. Default thresholds: 0..0.2 in 201 steps.
    """
    values = np.asarray(nme, dtype=np.float64)
    values = values[~np.isnan(values)]
    xs = np.linspace(0.0, 0.2, 201) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if values.size == 0:
        return xs, np.zeros_like(xs)
    ordered = np.sort(values)
    return xs, np.searchsorted(ordered, xs, side="right") / values.size


def failure_rate(nme: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Share of faces (NaN excluded) whose NME is above ``threshold``."""
    values = np.asarray(nme, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(np.mean(values > threshold)) if values.size else float("nan")


@dataclass
class LandmarkMatch:
    """Ground-truth faces paired with detections for landmark scoring.

    ``gt_index[k]`` and ``det_index[k]`` are the k-th pair; ``unmatched`` lists GT faces with
    landmarks that no detection covers (IoU below the threshold).
    """

    gt_index: np.ndarray
    det_index: np.ndarray
    unmatched: np.ndarray


def match_faces(gt_boxes: np.ndarray, det_boxes: np.ndarray, iou_threshold: float = 0.5) -> LandmarkMatch:
    """One-to-one pairs of GT and detected boxes (x1y1x2y2), greedily by decreasing IoU."""
    import torch
    from torchvision.ops import box_iou

    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    if len(gt) == 0 or len(det) == 0:
        return LandmarkMatch(np.zeros(0, np.int64), np.zeros(0, np.int64), np.arange(len(gt)))
    iou = box_iou(torch.from_numpy(gt), torch.from_numpy(det)).numpy()  # [G, D]
    order = np.argsort(-iou, axis=None, kind="stable")
    used_gt, used_det, pairs = set(), set(), []
    for flat in order:
        g, d = divmod(int(flat), iou.shape[1])
        if iou[g, d] < iou_threshold:
            break
        if g not in used_gt and d not in used_det:
            used_gt.add(g)
            used_det.add(d)
            pairs.append((g, d))
    gt_index = np.array([g for g, _ in pairs], dtype=np.int64)
    det_index = np.array([d for _, d in pairs], dtype=np.int64)
    unmatched = np.array(sorted(set(range(len(gt))) - used_gt), dtype=np.int64)
    return LandmarkMatch(gt_index, det_index, unmatched)


def plot_ced(curves: Sequence[tuple[str, np.ndarray]], path: str | Path, max_nme: float = 0.2) -> Path:
    """CED curves (name, per-face NME) of several methods on one PNG; legend with the failure rate."""
    from facescope.eval.reports import _new_figure, save_figure

    figure = _new_figure()
    axes = figure.add_subplot(1, 1, 1)
    for name, nme in curves:
        xs, ys = ced_curve(nme, np.linspace(0, max_nme, 401))
        axes.plot(xs, ys, linewidth=1.8, label=f"{name} (failure@{FAILURE_THRESHOLD:.0%}: {failure_rate(nme):.2%})")
    axes.set(xlabel="NME (normalised by sqrt(w*h))", ylabel="Fraction of faces", xlim=(0, max_nme), ylim=(0, 1.01), title="CED")
    axes.grid(True, linestyle=":", linewidth=0.6)
    axes.legend(loc="lower right", fontsize=8)
    path = Path(path)
    save_figure(figure, path)
    return path
