"""The official WIDER FACE evaluation protocol (``eval_tools``: ``read_pred.m``, ``norm_score.m``,
``evaluation.m``), vectorised with numpy.

The protocol, step by step (each step is a function below):

1. **Sort** each image's predictions by score, descending (``read_pred.m``; stable, like MATLAB's
   ``sort``). The Python ports skip this and mis-score unsorted files.
2. **Normalise** scores globally: ``s' = (s - min) / (max - min)`` over all predictions of all
   evaluated images (``norm_score.m``; MATLAB starts from ``max = realmin('single')``, so a
   maximum below 1.18e-38 is replaced by it).
3. Per image, every prediction picks its best ground-truth face (highest IoU with the "+1"
   convention, ``x2 = x + w``; first on ties). With IoU >= 0.5 it either hits a face outside the
   subset's keep list (the prediction is then *excluded*, neither TP nor FP) or recalls a kept
   face (counted once; a second hit on a recalled face is a false positive).
4. For 1000 thresholds ``t = 1 - k/1000``: TP = recalled faces and PROP = non-excluded predictions
   among those with ``s' >= t``, summed over images. Images without ground truth or without
   predictions are skipped (their kept faces still count as misses).
5. precision = TP/PROP, recall = TP/#kept faces; AP = VOC all-point area (``VOCap``).

Because the predictions with ``s' >= t`` are a prefix of each sorted list, the per-threshold sums
are histograms of each prediction's threshold rank: the whole data set is evaluated with a few
array operations per subset instead of 3,226 x 1000 Python iterations.

Degenerate cases (decisions; the official code crashes or yields NaN):

* all scores equal (max == min): every normalised score is 1 (each prediction passes every
  threshold), and a note is added;
* a subset with no kept face: its AP is NaN (recall undefined), with a note;
* thresholds where no prediction is counted (PROP = 0): precision is NaN there and, like MATLAB's
  ``max`` (which skips NaN), ignored by the AP envelope;
* a missing prediction file: see ``missing=`` of :func:`evaluate_widerface`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from facescope.errors import DataError
from facescope.eval.widerface_io import SUBSETS, WiderGroundTruth

IOU_THRESHOLD = 0.5
NUM_THRESHOLDS = 1000
CHALLENGE_IOUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
MATLAB_SINGLE_REALMIN = float(np.finfo(np.float32).tiny)  # realmin('single'), norm_score.m's initial max
MATLAB_SINGLE_REALMAX = float(np.finfo(np.float32).max)  # realmax('single'), its initial min
MissingPolicy = Literal["error", "empty", "skip"]


@dataclass
class PRCurve:
    """Precision/recall of one subset at the 1000 official score thresholds.

    Args:
        thresholds: ``ndarray[T]`` normalised-score thresholds ``1 - k/T`` (descending).
        precision: ``ndarray[T]`` (NaN where no prediction is counted).
        recall: ``ndarray[T]``.
        true_positives: ``ndarray[T]`` recalled faces.
        proposals: ``ndarray[T]`` counted (non-excluded) predictions.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    true_positives: np.ndarray
    proposals: np.ndarray


@dataclass
class WiderFaceResult:
    """Outcome of a WIDER FACE evaluation.

    Attributes:
        ap: ``{"easy", "medium", "hard"} -> AP`` (IoU 0.5, the official number).
        curves: subset -> :class:`PRCurve` at IoU 0.5.
        num_faces: subset -> number of faces in its keep lists over the evaluated images.
        num_images: images evaluated.
        split_size: images in the whole split (3,226 for val).
        num_predictions: predictions over the evaluated images.
        mode: ``"full"`` (all images of the split) or ``"mini-benchmark"`` (a subset of the
            images: never comparable to published full-val numbers).
        challenge_map: subset -> mean AP over IoU 0.50:0.05:0.95 (the WIDER Face Challenge
            metric; RetinaFace Tab. 3 quotes the hard subset), or None if not computed. This
            protocol run at ten IoU thresholds; the challenge server's code is not public.
        ap_per_iou: subset -> ``ndarray[10]`` APs behind ``challenge_map``.
        notes: degenerate cases met (missing files, equal scores...), one line each.
        name: method label for tables and plots.
        image_keys: the evaluated images (``"<event>/<name>"``), in official order.
    """

    ap: dict[str, float]
    curves: dict[str, PRCurve]
    num_faces: dict[str, int]
    num_images: int
    split_size: int
    num_predictions: int
    mode: str
    iou_threshold: float = IOU_THRESHOLD
    challenge_map: dict[str, float] | None = None
    ap_per_iou: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    name: str = ""
    image_keys: list[str] = field(default_factory=list)

    @property
    def is_full(self) -> bool:
        """True for an evaluation over the whole split (a number comparable with papers)."""
        return self.mode == "full"

    @property
    def partial(self) -> bool:
        """True in mini-benchmark mode (only part of the split's images evaluated)."""
        return not self.is_full

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no curves; see :func:`facescope.eval.reports.result_to_json`)."""
        return {
            "name": self.name,
            "mode": self.mode,
            "ap": dict(self.ap),
            "challenge_map": dict(self.challenge_map) if self.challenge_map is not None else None,
            "num_faces": dict(self.num_faces),
            "num_images": self.num_images,
            "split_size": self.split_size,
            "num_predictions": self.num_predictions,
            "iou_threshold": self.iou_threshold,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------------
# protocol steps


def sort_by_score(table: np.ndarray) -> np.ndarray:
    """Rows of ``ndarray[P, 5]`` (``x, y, w, h, score``) by descending score, ties in file order
    (MATLAB's ``sort(..., 'descend')`` is stable)."""
    order = np.argsort(-table[:, 4], kind="stable")
    return table[order]


def score_extrema(predictions: Sequence[np.ndarray]) -> tuple[float, float]:
    """``(min, max)`` score as ``norm_score.m`` finds them: its running max starts at
    ``realmin('single')`` and its running min at ``realmax('single')``."""
    lowest, highest = MATLAB_SINGLE_REALMAX, MATLAB_SINGLE_REALMIN
    for table in predictions:
        if len(table):
            lowest = min(lowest, float(table[:, 4].min()))
            highest = max(highest, float(table[:, 4].max()))
    return lowest, highest


def normalize_scores(scores: np.ndarray, lowest: float, highest: float) -> np.ndarray:
    """``(s - min) / (max - min)``; all ones when ``max == min`` (the official code divides by 0)."""
    if highest == lowest:
        return np.ones_like(scores, dtype=np.float64)
    return (scores - lowest) / (highest - lowest)


def iou_plus_one(pred_xywh: np.ndarray, gt_xywh: np.ndarray) -> np.ndarray:
    """IoU of ``ndarray[P, 4]`` predictions against ``ndarray[G, 4]`` faces -> ``ndarray[P, G]``.

    Both in ``x, y, w, h``; converted with ``x2 = x + w`` and measured with the official "+1"
    rule (``width = x2 - x1 + 1``); non-overlapping pairs are 0. Same floating-point operations,
    in the same order, as ``bbox_overlaps`` / ``boxoverlap.m``.
    """
    p = pred_xywh.astype(np.float64, copy=True)
    g = gt_xywh.astype(np.float64, copy=True)
    p[:, 2:4] += p[:, 0:2]  # x2 = x + w, y2 = y + h
    g[:, 2:4] += g[:, 0:2]
    pred_area = (p[:, 2] - p[:, 0] + 1) * (p[:, 3] - p[:, 1] + 1)  # [P]
    gt_area = (g[:, 2] - g[:, 0] + 1) * (g[:, 3] - g[:, 1] + 1)  # [G]
    inter = _overlap_1d(p[:, 0], p[:, 2], g[:, 0], g[:, 2])  # [P, G] widths, clamped at 0
    inter *= _overlap_1d(p[:, 1], p[:, 3], g[:, 1], g[:, 3])  # times heights
    union = np.add.outer(pred_area, gt_area)  # [P, G]
    union -= inter
    if (pred_area <= 0).any() or (gt_area <= 0).any():  # degenerate boxes: union may vanish
        inter[union <= 0] = 0.0
        union[union <= 0] = 1.0
    return np.divide(inter, union, out=inter)


def _overlap_1d(a1: np.ndarray, a2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """``max(min(a2, b2) - max(a1, b1) + 1, 0)`` for all pairs -> ``ndarray[len(a1), len(b1)]``."""
    out = np.minimum.outer(a2, b2)
    out -= np.maximum.outer(a1, b1)
    out += 1
    return np.maximum(out, 0.0, out=out)


def best_matches(pred_xywh: np.ndarray, gt_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's best face: ``(index ndarray[P] int64, IoU ndarray[P])``, first on ties."""
    iou = iou_plus_one(pred_xywh, gt_xywh)  # [P, G]
    best = np.argmax(iou, axis=1)
    return best, iou[np.arange(len(best)), best]


def threshold_ranks(normalized: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each score, the first threshold index ``k`` with ``thresholds[k] <= score``
    (``len(thresholds)`` when it passes none). ``thresholds`` must be descending."""
    ascending = thresholds[::-1]
    passed = np.searchsorted(ascending, normalized, side="right")  # how many thresholds are <= score
    return len(thresholds) - passed


def cumulative_counts(ranks: np.ndarray, weights: np.ndarray, num_thresholds: int) -> np.ndarray:
    """``out[k] = sum(weights[ranks <= k])``: counts of predictions passing threshold ``k``."""
    histogram = np.bincount(ranks, weights=weights.astype(np.float64), minlength=num_thresholds + 1)
    return np.cumsum(histogram[:num_thresholds])


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point AP (``VOCap`` of the WIDER ``eval_tools``).

    ``mrec = [0, recall, 1]``, ``mpre = [0, precision, 0]``; precision made monotone from the
    right; AP = sum over recall steps of ``delta_recall * precision``. NaN precisions are skipped
    by the envelope, like MATLAB's ``max``. Returns NaN when recall itself is undefined.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if np.isnan(recall).any():
        return float("nan")
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], np.nan_to_num(precision, nan=0.0), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


# --------------------------------------------------------------------------------------------------
# the whole data set


@dataclass
class _MatchTable:
    """All evaluated predictions of the data set, concatenated image after image (each image's
    rows sorted by score): the only per-image work of the protocol."""

    normalized: np.ndarray  # [N] normalised scores
    face_index: np.ndarray  # [N] global index of the best face (into the concatenated faces)
    best_iou: np.ndarray  # [N]
    face_offsets: np.ndarray  # [num_images + 1] start of each image's faces


def _match_table(gt: WiderGroundTruth, tables: list[np.ndarray], lowest: float, highest: float) -> _MatchTable:
    face_counts = np.array([len(image.boxes) for image in gt.images], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(face_counts)))
    scores, faces, ious = [], [], []
    for i, (image, table) in enumerate(zip(gt.images, tables)):
        if len(image.boxes) == 0 or len(table) == 0:
            continue  # evaluation.m: skip images without faces or predictions
        best, best_iou = best_matches(table[:, :4], image.boxes)
        scores.append(normalize_scores(table[:, 4], lowest, highest))
        faces.append(best + offsets[i])
        ious.append(best_iou)
    if not scores:
        empty = np.zeros(0)
        return _MatchTable(empty, empty.astype(np.int64), empty, offsets)
    return _MatchTable(np.concatenate(scores), np.concatenate(faces), np.concatenate(ious), offsets)


def _kept_faces(gt: WiderGroundTruth, subset: str, total: int, offsets: np.ndarray) -> np.ndarray:
    """``ndarray[total]`` bool: True for faces in the subset's keep lists."""
    kept = np.zeros(total, dtype=bool)
    for i, indices in enumerate(gt.keep[subset]):
        kept[offsets[i] + indices] = True
    return kept


def _subset_curve(
    table: _MatchTable, kept: np.ndarray, ranks: np.ndarray, iou_threshold: float, thresholds: np.ndarray
) -> PRCurve:
    """Steps 3-5 for one subset and one IoU threshold, on the whole data set at once."""
    matched = table.best_iou >= iou_threshold
    hits_kept = matched & kept[table.face_index]
    excluded = matched & ~kept[table.face_index]
    hit_rows = np.nonzero(hits_kept)[0]
    _, first = np.unique(table.face_index[hit_rows], return_index=True)  # first hit of each kept face
    recalls = np.zeros(len(table.normalized), dtype=np.float64)
    recalls[hit_rows[first]] = 1.0
    num = len(thresholds)
    true_positives = cumulative_counts(ranks, recalls, num)
    proposals = cumulative_counts(ranks, (~excluded).astype(np.float64), num)
    num_kept = int(kept.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = true_positives / proposals
        recall = true_positives / num_kept if num_kept else np.full(num, np.nan)
    return PRCurve(thresholds, precision, recall, true_positives, proposals)


def official_thresholds(num: int = NUM_THRESHOLDS) -> np.ndarray:
    """``1 - k/num`` for ``k = 1..num`` (computed as the official code does)."""
    return 1.0 - np.arange(1, num + 1, dtype=np.float64) / num


def evaluate_widerface(
    predictions: Mapping[str, np.ndarray],
    gt: WiderGroundTruth,
    *,
    missing: MissingPolicy = "error",
    challenge: bool = True,
    iou_threshold: float = IOU_THRESHOLD,
    name: str = "",
) -> WiderFaceResult:
    """Evaluate predictions with the official WIDER FACE protocol.

    Args:
        predictions: image key ``"<event>/<name>"`` -> ``ndarray[P, 5]`` ``x, y, w, h, score``
            (any order; sorted here). Keys not in ``gt`` are ignored (as in MATLAB).
        gt: ground truth with easy/medium/hard keep lists (:func:`read_wider_mat`).
        missing: what to do with ground-truth images that have no predictions entry:
            ``"error"`` (default: raise, naming how many and one example), ``"empty"`` (count them
            as images without detections, what the official MATLAB code does after a warning), or
            ``"skip"`` (evaluate only the predicted images: mini-benchmark mode).
        challenge: also compute mAP over IoU 0.50:0.05:0.95 (WIDER Face Challenge).
        iou_threshold: IoU for ``ap`` (0.5 officially).
        name: method label.
    """
    missing_keys = [key for key in gt.keys if key not in predictions]
    notes: list[str] = []
    gt = _apply_missing_policy(gt, missing_keys, missing, notes)
    absent = [s for s in SUBSETS if s not in gt.keep]
    if absent:
        raise DataError(f"ground truth {gt.source} has no keep lists for {', '.join(absent)}: read the official .mat files")
    tables = [sort_by_score(np.asarray(predictions.get(key, np.zeros((0, 5))), dtype=np.float64).reshape(-1, 5)) for key in gt.keys]
    lowest, highest = score_extrema(tables)
    if highest == lowest:
        notes.append(f"all prediction scores are equal ({highest}); normalised scores set to 1")
    table = _match_table(gt, tables, lowest, highest)
    thresholds = official_thresholds()
    ranks = threshold_ranks(table.normalized, thresholds)
    total_faces = int(table.face_offsets[-1])
    ious = sorted(set(CHALLENGE_IOUS) | {iou_threshold}) if challenge else [iou_threshold]
    ap, curves, num_faces, per_iou = {}, {}, {}, {}
    for subset in SUBSETS:
        kept = _kept_faces(gt, subset, total_faces, table.face_offsets)
        num_faces[subset] = int(kept.sum())
        if not num_faces[subset]:
            notes.append(f"{subset}: no face in the keep lists of the evaluated images; AP is NaN")
        subset_curves = {iou: _subset_curve(table, kept, ranks, iou, thresholds) for iou in ious}
        curves[subset] = subset_curves[iou_threshold]
        subset_ap = {iou: voc_ap(c.recall, c.precision) for iou, c in subset_curves.items()}
        ap[subset] = subset_ap[iou_threshold]
        per_iou[subset] = np.array([subset_ap[iou] for iou in CHALLENGE_IOUS]) if challenge else None
    split_size = gt.split_size if gt.split_size is not None else len(gt.images)
    mode = "full" if len(gt.images) == split_size else "mini-benchmark"
    return WiderFaceResult(
        ap=ap,
        curves=curves,
        num_faces=num_faces,
        num_images=len(gt.images),
        split_size=split_size,
        num_predictions=int(sum(len(t) for t in tables)),
        mode=mode,
        iou_threshold=iou_threshold,
        challenge_map={s: float(np.mean(v)) for s, v in per_iou.items()} if challenge else None,
        ap_per_iou=per_iou if challenge else None,
        notes=notes,
        name=name,
        image_keys=gt.keys,
    )


def _apply_missing_policy(
    gt: WiderGroundTruth, missing_keys: list[str], policy: MissingPolicy, notes: list[str]
) -> WiderGroundTruth:
    if not missing_keys:
        return gt
    count = f"{len(missing_keys)} of {len(gt.images)} images have no predictions (e.g. '{missing_keys[0]}')"
    if policy == "error":
        raise DataError(
            f"{count}; pass missing='empty' (--missing empty) to count them as images without detections (official "
            "MATLAB behaviour) or missing='skip' (--missing skip) to evaluate only the predicted images (mini-benchmark)"
        )
    if policy == "empty":
        notes.append(f"{count}: counted as images without detections")
        return gt
    if policy == "skip":
        notes.append(f"{count}: left out (mini-benchmark mode)")
        present = set(gt.keys).difference(missing_keys)
        return gt.restrict_to(present)
    raise ValueError(f"missing must be 'error', 'empty' or 'skip', got {policy!r}")

