"""Landmark NME normalised by sqrt(w*h), CED and face pairing: hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facescope.eval.landmarks import ced_curve, failure_rate, landmark_nme, match_faces, per_point_nme, plot_ced

GT = np.array(
    [
        [[2, 3], [7, 3], [5, 5], [3, 8], [7, 8]],
        [[12, 13], [17, 13], [15, 15], [13, 18], [17, 18]],
        [[0, 0]] * 5,
    ],
    dtype=float,
)
BOXES = np.array([[0, 0, 10, 10], [10, 10, 30, 15], [0, 0, 4, 4]], dtype=float)  # sqrt(w h) = 10, 10, 4
VALID = np.array([[True] * 5, [True, True, False, False, False], [False] * 5])


def test_nme_hand_computed() -> None:
    pred = GT.copy()
    pred[0] += [3, 4]  # every point 5 px off, box 10 x 10: NME 0.5
    pred[1, :2] += [6, 8]  # two annotated points 10 px off, box 20 x 5: NME 1.0
    pred[1, 2:] += 1000  # unannotated points do not count
    nme = landmark_nme(pred, GT, BOXES, VALID)
    np.testing.assert_allclose(nme[:2], [0.5, 1.0])
    assert np.isnan(nme[2])  # no annotated point
    # per point: left eye (5/10 + 10/10) / 2, nose only face 1: 5/10
    np.testing.assert_allclose(per_point_nme(pred, GT, BOXES, VALID), [0.75, 0.75, 0.5, 0.5, 0.5])


def test_ced_and_failure_rate() -> None:
    nme = np.array([0.01, 0.05, 0.2, np.nan])
    xs, ys = ced_curve(nme, np.array([0.0, 0.02, 0.05, 0.1, 0.3]))
    np.testing.assert_allclose(ys, [0, 1 / 3, 2 / 3, 2 / 3, 1])  # NaN left out, <= is inclusive
    assert failure_rate(nme) == pytest.approx(1 / 3)
    assert failure_rate(np.array([0.01, np.inf])) == 0.5  # an undetected face counted as a failure


def test_match_faces_one_to_one_by_iou() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [200, 200, 210, 210]], dtype=float)
    det = np.array([[21, 21, 31, 31], [0, 0, 10, 10], [1, 0, 11, 10]], dtype=float)
    match = match_faces(gt, det)
    assert sorted(zip(match.gt_index.tolist(), match.det_index.tolist())) == [(0, 1), (1, 0)]
    assert match.unmatched.tolist() == [2]
    assert match_faces(gt, np.zeros((0, 4))).unmatched.tolist() == [0, 1, 2]


def test_ced_plot(tmp_path: Path) -> None:
    assert plot_ced([("a", np.array([0.01, 0.2]))], tmp_path / "ced.png").stat().st_size > 0
