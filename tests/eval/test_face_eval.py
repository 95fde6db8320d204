"""AFW / PASCAL faces AP with the face-eval conventions: hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facescope.errors import DataError
from facescope.eval.face_eval import ap_11_point, evaluate_face_ap, iou_inclusive, read_face_eval_detections, shift_box_tops

FACES = {
    "a": np.array([[0, 0, 49, 49], [100, 0, 119, 19], [200, 0, 249, 49]], dtype=float),  # face 2: 20 px -> ignored
    "b": np.array([[0, 0, 59, 59]], dtype=float),  # never detected
}
DETECTIONS = {
    "a": np.array(
        [
            [0, 0, 49, 49, 0.9],  # TP (face 1)
            [98, 0, 121, 23, 0.8],  # IoU 0.69 with the ignored face: neither TP nor FP
            [1, 0, 50, 49, 0.7],  # duplicate of face 1: FP
            [200, 0, 249, 49, 0.6],  # TP (face 3)
            [300, 300, 310, 310, 0.95],  # 11 x 11 <= 21 pixels: dropped
            [400, 400, 449, 449, 0.5],  # FP
        ],
        dtype=float,
    )
}


def test_hand_computed_ap() -> None:
    result = evaluate_face_ap(FACES, DETECTIONS, calibration_rounds=1)
    assert result.num_faces == 3
    np.testing.assert_allclose(result.precision, [1, 1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(result.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert result.ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3, abs=1e-12)  # 5/9
    assert result.ap11 == pytest.approx((4 * 1 + 3 * 2 / 3) / 11, abs=1e-12)  # 6/11
    flagged = evaluate_face_ap(FACES, DETECTIONS, ignore={"a": np.array([False, False, True])}, calibration_rounds=1)
    assert flagged.num_faces == 2  # face 3 flagged ignore in the annotation: its TP becomes excluded


def test_calibration_learns_the_annotation_style() -> None:
    faces = {"x": np.array([[0, 0, 99, 99], [200, 0, 299, 99]], dtype=float)}
    # detections 80 px wide, 10.5 px too low: relative offset (-0.5/80, -10.5/80), scale 1.25
    dets = {"x": np.array([[10.5, 20.5, 89.5, 99.5, 0.9], [210.5, 20.5, 289.5, 99.5, 0.8]])}
    result = evaluate_face_ap(faces, dets, calibration_rounds=2)
    assert result.transforms[0] == pytest.approx((-0.5 / 80, -10.5 / 80, 1.25, 1.25))
    assert result.ap == 1.0 and len(result.transforms) == 1


def test_helpers(tmp_path: Path) -> None:
    assert iou_inclusive(np.array([[0.0, 0, 9, 9]]), np.array([[5.0, 0, 14, 9]]))[0, 0] == pytest.approx(50 / 150)
    np.testing.assert_array_equal(shift_box_tops(np.array([[0.0, 10, 10, 59]])), [[0, 20, 10, 59]])  # +0.2 * 50
    assert ap_11_point(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx((6 * 1 + 5 * 0.5) / 11)
    path = tmp_path / "dets.txt"
    path.write_text("img1 0.9 1 2 3 4\nimg1 0.5 5 6 7 8\nimg2 0.1 0 0 1 1\n")
    dets = read_face_eval_detections(str(path))
    np.testing.assert_array_equal(dets["img1"], [[1, 2, 3, 4, 0.9], [5, 6, 7, 8, 0.5]])
    path.write_text("img1 0.9 1 2 3\n")
    with pytest.raises(DataError, match=r"dets\.txt:1: expected 'image_id score x1 y1 x2 y2'"):
        read_face_eval_detections(str(path))
