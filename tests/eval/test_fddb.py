"""FDDB: rasterisation like the official OpenCV calls, Hungarian matching, ROC merging."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facescope.errors import DataError
from facescope.eval.fddb import (
    DBL_MAX,
    FDDBResult,
    ImageROC,
    ellipse_mask,
    evaluate_fddb,
    image_roc,
    match_at_threshold,
    merge_image_rocs,
    pixel_iou_matrix,
    plot_fddb_roc,
    read_fddb_detections,
    read_fddb_ellipses,
    read_fddb_fold,
    rectangle_iou_matrix,
    rectangle_mask,
    rectangles_to_ellipses,
    write_fddb_detections,
)


def test_rectangle_mask_is_inclusive_with_rounded_corners() -> None:
    # corners (2, 3) and (2+3, 3+1) = (5, 4), both included: 4 x 2 pixels
    mask = rectangle_mask(np.array([2.0, 3.0, 3.0, 1.0]), 10, 10)
    assert mask.sum() == 8 and mask[3:5, 2:6].all()
    # 1.5 -> 2 and 2.5 -> 2 (round half to even, as cvRound), clipped to the image at the border
    assert rectangle_mask(np.array([1.5, 2.5, 5.0, 5.0]), 10, 10)[2:8, 2:7].sum() == 30
    assert rectangle_mask(np.array([-5.0, -5.0, 7.0, 7.0]), 10, 10).sum() == 9  # (0..2) x (0..2)


def test_ellipse_mask_axes_and_angle() -> None:
    flat = ellipse_mask(np.array([10.0, 3.0, 0.0, 20.0, 20.0]), 40, 40)
    rows, cols = np.flatnonzero(flat.any(axis=1)), np.flatnonzero(flat.any(axis=0))
    assert (cols[0], cols[-1], rows[0], rows[-1]) == (10, 30, 17, 23)  # 21 x 7 pixels: radii 10 and 3
    upright = ellipse_mask(np.array([10.0, 3.0, math.pi / 2, 20.0, 20.0]), 40, 40)
    np.testing.assert_array_equal(upright, flat.T)  # a quarter turn swaps the extents
    tilted = ellipse_mask(np.array([10.0, 3.0, math.pi / 4, 20.0, 20.0]), 40, 40)
    assert tilted[26, 26] and not tilted[14, 26]  # major axis along the image diagonal x = y
    assert ellipse_mask(np.array([0.9, 0.9, 0.0, 5.0, 5.0]), 10, 10).sum() == 1  # radii truncated to 0


def test_pixel_iou_of_masks() -> None:
    a = rectangle_mask(np.array([0.0, 0.0, 3.0, 3.0]), 10, 10)  # 4x4 = 16 pixels
    b = rectangle_mask(np.array([2.0, 2.0, 3.0, 3.0]), 10, 10)  # 16 pixels, 2x2 shared
    c = rectangle_mask(np.array([6.0, 6.0, 1.0, 1.0]), 10, 10)
    np.testing.assert_allclose(pixel_iou_matrix([a], [a, b, c]), [[1.0, 4 / 28, 0.0]], atol=1e-15)


def test_rectangle_iou_by_integral_images_equals_drawn_masks() -> None:
    rng = np.random.default_rng(3)
    gt = [ellipse_mask(np.array([rng.uniform(3, 30), rng.uniform(3, 20), rng.uniform(-3, 3), *rng.uniform(-5, 75, 2)]), 60, 70)
          for _ in range(4)]
    rects = np.column_stack([rng.uniform(-20, 70, (50, 2)), rng.uniform(-10, 40, (50, 2))])  # some inverted / outside
    drawn = [rectangle_mask(r, 60, 70) for r in rects]
    np.testing.assert_allclose(rectangle_iou_matrix(gt, rects), pixel_iou_matrix(gt, drawn), rtol=0, atol=1e-15)


def test_hungarian_matching_beats_greedy() -> None:
    # face 1 prefers det 1 (0.6) but face 2 overlaps det 1 only: the maximum-weight matching pairs
    # face 1-det 2 (0.55) and face 2-det 1 (0.58)
    scores = np.array([[0.6, 0.55, 0.0], [0.58, 0.0, 0.0]])
    assert match_at_threshold(scores, np.array([True, True, True])) == (2, pytest.approx(1.13), 1)
    assert match_at_threshold(scores, np.array([True, False, False])) == (1, pytest.approx(0.6), 0)
    # IoU 0.5 exactly is not a discrete TP (> 0.5), but counts in the continuous score
    assert match_at_threshold(np.array([[0.5]]), np.array([True])) == (0, pytest.approx(0.5), 1)
    roc = image_roc(scores, np.array([0.9, 0.8, 0.7]))
    np.testing.assert_array_equal(roc.thresholds, [0.7, 0.8, 0.9])
    np.testing.assert_array_equal(roc.tp_discrete, [2, 2, 1])
    np.testing.assert_allclose(roc.tp_continuous, [1.13, 1.13, 0.6])
    np.testing.assert_array_equal(roc.false_positives, [1, 0, 0])
    empty = image_roc(np.zeros((2, 0)), np.zeros(0))
    assert empty.thresholds.tolist() == [DBL_MAX] and empty.num_faces == 2


def test_merge_over_the_union_of_thresholds() -> None:
    a = ImageROC(np.array([0.5, 0.9]), np.array([2.0, 1.0]), np.array([1.6, 0.8]), np.array([1.0, 0.0]), 2)
    b = ImageROC(np.array([0.7]), np.array([1.0]), np.array([0.7]), np.array([2.0]), 1)
    c = ImageROC(np.array([DBL_MAX]), np.zeros(1), np.zeros(1), np.zeros(1), 1)  # no detections
    thresholds, disc, cont, fp, faces = merge_image_rocs([a, b, c])
    # at 0.5: a(0.5) + b(0.7) ; at 0.7: a(0.9) + b(0.7) ; at 0.9: a(0.9) only ; DBL_MAX: nothing
    np.testing.assert_array_equal(thresholds, [0.5, 0.7, 0.9, DBL_MAX])
    np.testing.assert_array_equal(disc, [3, 2, 1, 0])
    np.testing.assert_allclose(cont, [2.3, 1.5, 0.8, 0.0])
    np.testing.assert_array_equal(fp, [3, 2, 0, 0])
    assert faces == 4


def test_tpr_at_1000_false_positives() -> None:
    result = FDDBResult(np.array([0.1, 0.2, 0.3]), np.array([1500, 999, 500]), np.array([0.9, 0.8, 0.7]), np.zeros(3), 10, 1)
    assert result.tpr_at_fp(1000) == 0.8  # first row (ascending threshold) with FP < 1000
    assert result.tpr_at_fp(400) == 0.0


def test_end_to_end_one_image(tmp_path: Path) -> None:
    ellipses = {"img_1": np.array([[20.0, 12.0, math.pi / 2, 50.0, 40.0]])}  # upright face, 25 x 41 pixels
    dets = {"img_1": np.array([[38.0, 20.0, 24.0, 40.0, 0.9], [0.0, 0.0, 5.0, 5.0, 0.3]])}
    result = evaluate_fddb(ellipses, dets, {"img_1": (80, 100)}, name="box")
    gt_mask = ellipse_mask(ellipses["img_1"][0], 80, 100)
    iou = pixel_iou_matrix([gt_mask], [rectangle_mask(dets["img_1"][0], 80, 100)])[0, 0]
    assert iou > 0.5
    np.testing.assert_array_equal(result.thresholds, [0.3, 0.9])
    np.testing.assert_array_equal(result.false_positives, [1, 0])
    np.testing.assert_array_equal(result.tpr_discrete, [1, 1])
    np.testing.assert_allclose(result.tpr_continuous, [iou, iou])
    disc, cont = result.write_roc_files(tmp_path, prefix="m")
    assert disc.name == "mDiscROC.txt"
    assert disc.read_text().splitlines()[0] == "1 1 0.3"
    assert cont.read_text().splitlines()[1] == f"{iou:.9g} 0"
    assert plot_fddb_roc([result], tmp_path / "roc.png").stat().st_size > 0
    with pytest.raises(DataError, match="missing from the detections"):
        evaluate_fddb(ellipses, {}, {"img_1": (80, 100)})


def test_fddb_files(tmp_path: Path) -> None:
    (tmp_path / "FDDB-fold-01.txt").write_text("2002/08/11/big/img_591\n2002/08/26/big/img_265\n")
    assert read_fddb_fold(tmp_path / "FDDB-fold-01.txt") == ["2002/08/11/big/img_591", "2002/08/26/big/img_265"]
    (tmp_path / "FDDB-fold-01-ellipseList.txt").write_text(
        "2002/08/11/big/img_591\n1\n123.583300 85.549500 1.265839 269.693400 161.781200  1\n"
        "2002/08/26/big/img_265\n0\n"
    )
    ellipses = read_fddb_ellipses(tmp_path)  # a folder: all fold files merged
    np.testing.assert_allclose(ellipses["2002/08/11/big/img_591"], [[123.5833, 85.5495, 1.265839, 269.6934, 161.7812]])
    assert ellipses["2002/08/26/big/img_265"].shape == (0, 5)
    detections = {"2002/08/11/big/img_591": np.array([[1.5, 2, 3, 4, 0.99]]), "2002/08/26/big/img_265": np.zeros((0, 5))}
    write_fddb_detections(tmp_path / "dets.txt", detections, list(ellipses))
    again = read_fddb_detections(tmp_path / "dets.txt")
    np.testing.assert_array_equal(again["2002/08/11/big/img_591"], [[1.5, 2, 3, 4, 0.99]])
    (tmp_path / "bad.txt").write_text("img\n2\n1 2 3 4 0.5\n1 2 3\n")
    with pytest.raises(DataError, match=r"bad\.txt:4: expected 5 numbers, found 3: '1 2 3'"):
        read_fddb_detections(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("img\nmany\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected the number of regions of 'img': 'many'"):
        read_fddb_detections(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="not found"):
        read_fddb_ellipses(tmp_path / "none.txt")


def test_rectangles_to_ellipses_linear_map() -> None:
    weight = np.zeros((4, 5))
    weight[0, 3] = weight[1, 4] = 1.0  # cx <- left, cy <- top
    weight[2, 1] = weight[3, 0] = 0.5  # rb <- w/2, ra <- h/2
    weight[2, 2] = 1.0  # theta <- standardised w
    out = rectangles_to_ellipses(np.array([[10.0, 20.0, 30.0, 40.0]]), weight, np.zeros(4), np.ones(4), np.zeros(5), np.ones(5))
    np.testing.assert_allclose(out, [[20.0, 15.0, 30.0 - math.pi / 2, 10.0, 20.0]])


@pytest.mark.shared
def test_real_fddb_image_size(shared_data: Path) -> None:
    from facescope.eval.fddb import image_sizes_from_folder

    sizes = image_sizes_from_folder(shared_data / "images/fddb", ["img_588", "img_726"])
    assert all(h > 100 and w > 100 for h, w in sizes.values())
