"""The WIDER FACE ``eval_tools`` MATLAB evaluation, transcribed loop for loop into plain Python.

``read_pred.m`` (per-image sort by score), ``norm_score.m`` (global min-max with the
``realmin/realmax('single')`` starting values), ``evaluation.m`` with ``image_evaluation``,
``image_pr_info``, ``dataset_pr_info`` and ``VOCap``: one prediction, one threshold at a time,
exactly as the scripts iterate. It is slow (minutes on the full val set) and exists only as the
test oracle and benchmark baseline of :mod:`facescope.eval.widerface`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

_REALMIN_SINGLE = float(np.finfo(np.float32).tiny)
_REALMAX_SINGLE = float(np.finfo(np.float32).max)


def _box_overlap(gt_x1y1x2y2: list[list[float]], box: list[float]) -> list[float]:
    """``boxoverlap.m``: IoU of one box with each face, "+1" widths, 0 where disjoint."""
    out = []
    for gx1, gy1, gx2, gy2 in gt_x1y1x2y2:
        w = min(gx2, box[2]) - max(gx1, box[0]) + 1
        h = min(gy2, box[3]) - max(gy1, box[1]) + 1
        if w <= 0 or h <= 0:
            out.append(0.0)
            continue
        inter = w * h
        gt_area = (gx2 - gx1 + 1) * (gy2 - gy1 + 1)
        box_area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        out.append(inter / (gt_area + box_area - inter))
    return out


def _image_evaluation(
    pred: list[list[float]], gt: list[list[float]], ignore: list[int], iou_thresh: float
) -> tuple[list[int], list[int]]:
    """Returns ``(pred_recall, proposal_list)`` of one image (``image_evaluation`` in evaluation.m)."""
    gt_boxes = [[x, y, x + w, y + h] for x, y, w, h in gt]
    recall_list = [0] * len(gt)
    proposal_list = [1] * len(pred)
    pred_recall = [0] * len(pred)
    for h, row in enumerate(pred):
        box = [row[0], row[1], row[0] + row[2], row[1] + row[3]]
        overlaps = _box_overlap(gt_boxes, box)
        best = max(range(len(overlaps)), key=lambda k: (overlaps[k], -k))  # first index on ties
        if overlaps[best] >= iou_thresh:
            if ignore[best] == 0:
                recall_list[best] = -1
                proposal_list[h] = -1
            elif recall_list[best] == 0:
                recall_list[best] = 1
        pred_recall[h] = sum(1 for r in recall_list if r == 1)
    return pred_recall, proposal_list


def _image_pr_info(
    thresh_num: int, pred: list[list[float]], proposal_list: list[int], pred_recall: list[int]
) -> list[tuple[int, int]]:
    info = []
    for t in range(1, thresh_num + 1):
        thresh = 1 - t / thresh_num
        last = None
        for k, row in enumerate(pred):
            if row[4] >= thresh:
                last = k
        if last is None:
            info.append((0, 0))
        else:
            info.append((sum(1 for p in proposal_list[: last + 1] if p == 1), pred_recall[last]))
    return info


def _voc_ap(rec: list[float], prec: list[float]) -> float:
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        # MATLAB max() ignores NaN
        a, b = mpre[i], mpre[i + 1]
        mpre[i] = b if math.isnan(a) else (a if math.isnan(b) else max(a, b))
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def matlab_widerface_ap(
    predictions: Mapping[str, np.ndarray],
    keys: Sequence[str],
    gt_boxes: Sequence[np.ndarray],
    keep_lists_1based: Mapping[str, Sequence[Sequence[int]]],
    iou_thresh: float = 0.5,
    thresh_num: int = 1000,
) -> dict[str, float]:
    """AP per subset, computed as the MATLAB scripts do.

    Args:
        predictions: key -> ``[P, 5]`` ``x y w h score`` (any order); absent keys are images
            without predictions (MATLAB's warning path).
        keys, gt_boxes: images in order and their ``[G, 4]`` ``x y w h`` faces.
        keep_lists_1based: subset -> per image list of **1-based** face indices.
    """
    preds = []
    for key in keys:
        rows = [list(map(float, r)) for r in np.asarray(predictions.get(key, np.zeros((0, 5)))).reshape(-1, 5)]
        order = sorted(range(len(rows)), key=lambda k: -rows[k][4])  # Python's sort is stable
        preds.append([rows[k] for k in order])
    max_score, min_score = _REALMIN_SINGLE, _REALMAX_SINGLE
    for rows in preds:
        for row in rows:
            max_score, min_score = max(max_score, row[4]), min(min_score, row[4])
    for rows in preds:
        for row in rows:
            row[4] = (row[4] - min_score) / (max_score - min_score)
    result = {}
    for subset, keep_lists in keep_lists_1based.items():
        pr = [[0.0, 0.0] for _ in range(thresh_num)]
        count_face = 0
        for rows, gt, keep in zip(preds, gt_boxes, keep_lists):
            gt = [list(map(float, g)) for g in np.asarray(gt).reshape(-1, 4)]
            count_face += len(keep)
            if not gt or not rows:
                continue
            ignore = [0] * len(gt)
            for k in keep:
                ignore[k - 1] = 1
            pred_recall, proposal_list = _image_evaluation(rows, gt, ignore, iou_thresh)
            for t, (prop, tp) in enumerate(_image_pr_info(thresh_num, rows, proposal_list, pred_recall)):
                pr[t][0] += prop
                pr[t][1] += tp
        precision = [tp / prop if prop else float("nan") for prop, tp in pr]
        recall = [tp / count_face for _, tp in pr]
        result[subset] = _voc_ap(recall, precision)
    return result
