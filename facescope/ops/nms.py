"""Greedy NMS in numpy: the one NMS of the torch-free path (single-pass post-processing and
test-time augmentation alike). Imports no torch; tested equal to torchvision's NMS (float32
arithmetic, same tie order) in ``tests/inference/test_postprocess.py`` and ``tests/ops/test_voting.py``."""

from __future__ import annotations

import numpy as np

NMS_BLOCK = 128  # rows of the overlap block: ~128 x K float32 temporaries


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, pixel_offset: float = 0.0) -> np.ndarray:
    """Greedy NMS in numpy; the kept indices by decreasing score (ties in index order).

    Same rule and float32 arithmetic as :func:`facescope.ops.boxes.nms` (torchvision): a box is
    suppressed when its IoU with a kept, higher-ranked box is ``> iou_threshold``;
    ``pixel_offset=1`` is the "+1" area convention of the official numpy NMS, ``0`` the continuous one.

    Args:
        boxes: ``[K, 4]`` x1, y1, x2, y2.
        scores: ``[K]``.

    Returns:
        ``[M]`` int64 indices into ``boxes``.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"expected boxes [K, 4] and scores [K], got {list(boxes.shape)} and {list(scores.shape)}")
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order].astype(np.float32, copy=True)
    if pixel_offset:
        # IoU under the +1 convention equals the continuous IoU of boxes grown by one pixel.
        ranked[:, 2:] += np.float32(pixel_offset)
    x1, y1, x2, y2 = ranked.T
    areas = (x2 - x1) * (y2 - y1)
    threshold = np.float32(iou_threshold)
    count = len(order)
    suppressed = np.zeros(count, dtype=bool)
    keep = []
    # Overlaps are computed a block of ranked boxes at a time (the still-alive rows of the block
    # against every lower-ranked box), then the greedy scan inside the block only ORs boolean rows:
    # the same decisions as box-by-box greedy NMS, with far fewer numpy calls.
    for start in range(0, count, NMS_BLOCK):
        rows = np.arange(start, min(start + NMS_BLOCK, count))
        alive = rows[~suppressed[rows]]
        if alive.size == 0:
            continue
        cols = slice(start, count)
        width = np.maximum(np.float32(0), np.minimum(x2[alive, None], x2[None, cols]) - np.maximum(x1[alive, None], x1[None, cols]))
        height = np.maximum(np.float32(0), np.minimum(y2[alive, None], y2[None, cols]) - np.maximum(y1[alive, None], y1[None, cols]))
        inter = width * height
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 of empty boxes: NaN, never suppresses (as torchvision)
            overlaps = inter / (areas[alive, None] + areas[None, cols] - inter) > threshold
        for k, i in enumerate(alive):
            if suppressed[i]:
                continue
            keep.append(i)
            suppressed[i + 1 :] |= overlaps[k, i - start + 1 :]
    return order[np.asarray(keep, dtype=np.int64)]


def pairwise_iou_numpy(boxes_a: np.ndarray, boxes_b: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """``[A, 4] x [B, 4]`` x1, y1, x2, y2 -> ``[A, B]`` IoU in [0, 1] (0 where a union is empty), torch-free.

    ``pixel_offset`` is the width convention, as in :func:`nms_numpy`: ``0`` for continuous pixels,
    ``1`` for the "+1" widths of the benchmarks' inclusive boxes.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0]) + pixel_offset, 0, None)
    height = np.clip(np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1]) + pixel_offset, 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0] + pixel_offset) * (a[:, 3] - a[:, 1] + pixel_offset)
    area_b = (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)
    union = np.add.outer(area_a, area_b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
