"""Matching detections to tracks: IoU costs and a thresholded linear assignment (numpy + ``lap``)."""

from __future__ import annotations

import numpy as np

from facescope.ops.nms import pairwise_iou_numpy


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``[A, 4] x [B, 4]`` x1, y1, x2, y2 (continuous pixels) -> ``[A, B]`` IoU in [0, 1]."""
    return pairwise_iou_numpy(boxes_a, boxes_b)


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of rows to columns, keeping only pairs with
    ``cost <= max_cost`` (a pair above it is never forced: its row and column stay unmatched).

    Args:
        cost: ``[R, C]`` costs (here ``1 - IoU``).
        max_cost: the largest cost a pair may have.

    Returns:
        ``(pairs [M, 2] row, column; unmatched rows [R - M]; unmatched columns [C - M])``.

    ``lap.lapjv`` with ``extend_cost`` and ``cost_limit`` solves the rectangular problem with
    the limit built in (each row may instead take a dummy at ``max_cost``), the way ByteTrack's
    own code calls it.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return np.zeros((0, 2), dtype=np.int64), np.arange(rows), np.arange(cols)
    import lap

    _, row_to_col, _ = lap.lapjv(np.ascontiguousarray(cost, dtype=np.float64), extend_cost=True, cost_limit=max_cost + 1e-9)
    matched_rows = np.flatnonzero(row_to_col >= 0)
    pairs = np.stack([matched_rows, row_to_col[matched_rows]], axis=1).astype(np.int64)
    pairs = pairs[cost[pairs[:, 0], pairs[:, 1]] <= max_cost]
    free_rows, free_cols = np.ones(rows, dtype=bool), np.ones(cols, dtype=bool)
    free_rows[pairs[:, 0]] = False
    free_cols[pairs[:, 1]] = False
    return pairs, np.flatnonzero(free_rows), np.flatnonzero(free_cols)
