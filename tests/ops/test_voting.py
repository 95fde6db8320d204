"""Box voting (reference §4.1) and numpy greedy NMS: hand-computed cases and a plain-Python oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from facescope.ops.nms import nms_numpy
from facescope.ops.voting import box_voting, merge_detections

# Four boxes, iou 0.3, "+1" widths: b0/b1 overlap (IoU 81/119 = 0.68), b2 and b3 are isolated.
# Score order: b0 0.9, b2 0.8, b1 0.6, b3 0.5.
BOXES = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59], [100, 100, 109, 109]], np.float32)
SCORES = np.array([0.9, 0.6, 0.8, 0.5], np.float32)
# b0's landmark k is (k, 0), b1's is (k + 3, 1); the others are arbitrary.
LANDMARKS = np.stack(
    [
        np.stack([np.arange(5), np.zeros(5)], axis=1),
        np.stack([np.arange(5) + 3, np.ones(5)], axis=1),
        np.full((5, 2), 55.0),
        np.full((5, 2), 105.0),
    ]
).astype(np.float32)
# (0.9 * [0,0,9,9] + 0.6 * [1,1,10,10]) / 1.5
MERGED = [0.4, 0.4, 9.4, 9.4]
MERGED_LANDMARKS = np.stack([np.arange(5) + 1.2, np.full(5, 0.4)], axis=1)


def test_drop_keeps_only_merged_clusters() -> None:
    boxes, scores, landmarks = box_voting(BOXES, SCORES, LANDMARKS, 0.3, "drop", 750)
    np.testing.assert_allclose(boxes, [MERGED], atol=1e-5)
    np.testing.assert_allclose(scores, [0.9], atol=1e-7)  # the cluster's max, not its mean
    assert landmarks is not None
    np.testing.assert_allclose(landmarks, [MERGED_LANDMARKS], atol=1e-5)


def test_keep_last_keeps_only_the_final_singleton() -> None:
    boxes, scores, landmarks = box_voting(BOXES, SCORES, LANDMARKS, 0.3, "keep_last", 750)
    # b2 is a singleton with b3 still in the pool: dropped; b3 empties the pool: kept as is.
    np.testing.assert_allclose(boxes, [MERGED, [100, 100, 109, 109]], atol=1e-5)
    np.testing.assert_allclose(scores, [0.9, 0.5], atol=1e-7)
    assert landmarks is not None
    np.testing.assert_allclose(landmarks[1], np.full((5, 2), 105.0))


def test_keep_keeps_every_singleton_in_score_order() -> None:
    boxes, scores, landmarks = box_voting(BOXES, SCORES, None, 0.3, "keep", None)
    np.testing.assert_allclose(boxes, [MERGED, [50, 50, 59, 59], [100, 100, 109, 109]], atol=1e-5)
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.5], atol=1e-7)
    assert landmarks is None


def test_cap_keeps_the_first_merged_boxes() -> None:
    boxes, scores, _ = box_voting(BOXES, SCORES, None, 0.3, "keep", 2)
    np.testing.assert_allclose(scores, [0.9, 0.8], atol=1e-7)
    assert boxes.shape == (2, 4)
    assert box_voting(BOXES, SCORES, None, 0.3, "keep", 0)[0].shape == (0, 4)


@pytest.mark.parametrize("policy", ["drop", "keep_last", "keep"])
def test_empty_input_gives_empty_output(policy: str) -> None:
    boxes, scores, landmarks = box_voting(
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32), 0.3, policy, 750
    )
    assert boxes.shape == (0, 4) and scores.shape == (0,) and landmarks is not None and landmarks.shape == (0, 5, 2)
    assert boxes.dtype == np.float32


@pytest.mark.parametrize(("policy", "kept"), [("drop", 0), ("keep_last", 1), ("keep", 1)])
def test_a_cluster_of_one(policy: str, kept: int) -> None:
    boxes, scores, _ = box_voting(BOXES[:1], SCORES[:1], None, 0.3, policy, 750)
    assert len(boxes) == kept
    if kept:
        np.testing.assert_array_equal(boxes, BOXES[:1])
        np.testing.assert_array_equal(scores, SCORES[:1])


def test_threshold_is_inclusive_and_uses_plus_one_widths() -> None:
    # Under +1 widths: areas 100 and 50, intersection 50 -> IoU exactly 0.5 -> merged.
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 4]], np.float32)
    scores = np.array([0.75, 0.25], np.float32)
    merged, merged_scores, _ = box_voting(boxes, scores, None, 0.5, "drop", None)
    np.testing.assert_allclose(merged, [[0, 0, 9, 7.75]], atol=1e-6)  # 0.75 * 9 + 0.25 * 4
    np.testing.assert_allclose(merged_scores, [0.75])
    # Continuous widths: areas 81 and 36, IoU 36 / 81 < 0.5 -> two singletons, both dropped.
    assert len(box_voting(boxes, scores, None, 0.5, "drop", None, pixel_offset=0.0)[0]) == 0


def test_degenerate_box_does_not_hang() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)  # zero area: IoU 0/0 without +1
    out, _, _ = box_voting(boxes, np.array([0.5, 0.4], np.float32), None, 0.3, "keep", None, pixel_offset=0.0)
    assert len(out) == 2


def test_zero_scores_average_plainly() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], np.float32)
    merged, merged_scores, _ = box_voting(boxes, np.zeros(2, np.float32), None, 0.3, "drop", None)
    np.testing.assert_allclose(merged, [[1, 0, 11, 10]])
    np.testing.assert_array_equal(merged_scores, [0])


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="singleton"):
        box_voting(BOXES, SCORES, None, 0.3, "sometimes", 750)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scores must have shape"):
        box_voting(BOXES, SCORES[:2], None, 0.3, "drop", 750)
    with pytest.raises(ValueError, match=">= 0"):
        box_voting(BOXES, -SCORES, None, 0.3, "drop", 750)


# A plain-Python transcription of reference §4.1 (lists and loops only), the oracle.
def _oracle_iou(a: list[float], b: list[float]) -> float:
    area_a = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0)
    area_b = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1.0)
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1.0)
    inter = inter_w * inter_h
    return inter / (area_a + area_b - inter)


def _oracle_vote(
    rows: list[list[float]], threshold: float, singleton: str, cap: int | None
) -> list[list[float]]:
    """rows: [x1, y1, x2, y2, score, 10 landmark values]; returns merged rows."""
    pool = sorted(rows, key=lambda row: -row[4])  # Python's sort is stable, like the tested one
    out: list[list[float]] = []
    while pool:
        top = pool[0]
        cluster = [row for row in pool if _oracle_iou(top, row) >= threshold]
        pool = [row for row in pool if _oracle_iou(top, row) < threshold]
        if len(cluster) == 1:
            if singleton == "keep" or (singleton == "keep_last" and not pool):
                out.append(list(cluster[0]))
            continue
        total = 0.0
        for row in cluster:
            total += row[4]
        merged = []
        for k in range(len(top)):
            if k == 4:
                merged.append(max(row[4] for row in cluster))
                continue
            acc = 0.0
            for row in cluster:
                acc += row[k] * row[4]
            merged.append(acc / total)
        out.append(merged)
    return out if cap is None else out[:cap]


def _random_candidates(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces seen by several passes: jittered copies of a few true boxes, exact duplicates and tied scores."""
    centres = rng.uniform(0, 400, size=(max(count // 6, 1), 2))
    sizes = rng.uniform(6, 80, size=centres.shape[0])
    pick = rng.integers(0, centres.shape[0], size=count)
    jitter = rng.normal(0, 0.12, size=(count, 4)) * sizes[pick, None]
    half = sizes[pick, None] / 2
    boxes = np.concatenate([centres[pick] - half, centres[pick] + half], axis=1) + jitter
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    boxes = np.round(boxes, 1)
    scores = np.round(rng.uniform(0.05, 1.0, size=count), 2)  # two decimals: many ties
    duplicates = rng.integers(0, count, size=count // 10)
    boxes[duplicates[1:]] = boxes[duplicates[:-1]]
    scores[duplicates[1:]] = scores[duplicates[:-1]]
    landmarks = (boxes[:, None, :2] + rng.uniform(0, 1, size=(count, 5, 2)) * (boxes[:, None, 2:] - boxes[:, None, :2]))
    return boxes.astype(np.float32), scores.astype(np.float32), landmarks.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["drop", "keep_last", "keep"])
def test_matches_plain_python_transcription(seed: int, policy: str) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(50, 301))
    boxes, scores, landmarks = _random_candidates(rng, count)
    threshold = [0.3, 0.4, 0.5][seed % 3]
    cap = [None, 750, 20][seed % 3]
    rows = [
        [float(v) for v in boxes[i]] + [float(scores[i])] + [float(v) for v in landmarks[i].reshape(-1)]
        for i in range(count)
    ]
    expected = _oracle_vote(rows, threshold, policy, cap)
    got_boxes, got_scores, got_landmarks = box_voting(boxes, scores, landmarks, threshold, policy, cap)
    assert got_landmarks is not None
    assert len(got_boxes) == len(expected) > 0
    np.testing.assert_allclose(got_boxes, [row[:4] for row in expected], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(got_scores, [row[4] for row in expected], rtol=1e-6)
    np.testing.assert_allclose(got_landmarks.reshape(-1, 10), [row[5:] for row in expected], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("pixel_offset", [0.0, 1.0])
def test_nms_numpy_matches_torchvision(pixel_offset: float) -> None:
    rng = np.random.default_rng(7)
    boxes, scores, _ = _random_candidates(rng, 200)
    scores = scores + rng.uniform(0, 1e-3, size=scores.shape).astype(np.float32)  # torchvision: ties unspecified
    keep = nms_numpy(boxes, scores, 0.4, pixel_offset)
    grown = torch.from_numpy(boxes.copy())
    grown[:, 2:] += pixel_offset  # +1 IoU equals the continuous IoU of boxes grown by one pixel
    expected = torchvision.ops.nms(grown.double(), torch.from_numpy(scores).double(), 0.4).numpy()
    np.testing.assert_array_equal(keep, expected)


def test_merge_detections_nms_caps_and_carries_landmarks() -> None:
    boxes, scores, landmarks = merge_detections(BOXES, SCORES, LANDMARKS, "nms", 0.3, max_detections=2)
    np.testing.assert_array_equal(boxes, BOXES[[0, 2]])
    np.testing.assert_array_equal(scores, SCORES[[0, 2]])
    assert landmarks is not None
    np.testing.assert_array_equal(landmarks, LANDMARKS[[0, 2]])
    with pytest.raises(ValueError, match="merge method"):
        merge_detections(BOXES, SCORES, None, "wbf", 0.3)  # type: ignore[arg-type]
