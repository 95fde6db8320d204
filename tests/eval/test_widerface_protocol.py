"""The official WIDER FACE protocol: hand-computed cases, the MATLAB transcription as oracle,
and the published APs of a real prediction set."""

from __future__ import annotations

import numpy as np
import pytest

from oracles.widerface_matlab import matlab_widerface_ap
from facescope.errors import DataError
from facescope.eval.widerface import (
    MATLAB_SINGLE_REALMIN,
    evaluate_widerface,
    iou_plus_one,
    normalize_scores,
    official_thresholds,
    score_extrema,
    sort_by_score,
    threshold_ranks,
    voc_ap,
)
from facescope.eval.widerface_io import WiderGroundTruth, WiderImage


def make_gt(boxes_per_image: list[list[list[float]]], keep_1based: dict[str, list[list[int]]]) -> WiderGroundTruth:
    images = [WiderImage("0--Parade", f"img_{i}", np.array(b, dtype=np.float64).reshape(-1, 4)) for i, b in enumerate(boxes_per_image)]
    keep = {s: [np.array(k, dtype=np.int64) - 1 for k in lists] for s, lists in keep_1based.items()}
    return WiderGroundTruth(images, keep, "test")


def test_voc_ap_hand_computed() -> None:
    # mrec [0,.5,.5,1,1], mpre [0,1,.5,.6,0] -> envelope [1,1,.6,.6,0]: AP = .5*1 + .5*.6
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.6])) == pytest.approx(0.8, abs=1e-15)
    # NaN precision (no counted prediction) is skipped by the envelope, like MATLAB's max
    assert voc_ap(np.array([0.0, 0.5]), np.array([np.nan, 1.0])) == pytest.approx(0.5, abs=1e-15)
    assert np.isnan(voc_ap(np.array([np.nan]), np.array([1.0])))


def test_iou_uses_plus_one_convention() -> None:
    a = np.array([[0.0, 0.0, 9.0, 9.0]])  # x2 = 9: 10 pixels wide under the +1 rule
    b = np.array([[0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 9.0, 9.0], [10.0, 0.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]])
    # inter 5x10=50, union 150 ; touching at x=10 -> disjoint ; one shared corner pixel -> 1/199
    np.testing.assert_allclose(iou_plus_one(a, b), [[1.0, 1 / 3, 0.0, 1 / 199]], rtol=0, atol=1e-15)


def test_scores_sorted_stably_and_normalised_globally() -> None:
    table = np.array([[0, 0, 1, 1, 0.2], [1, 0, 1, 1, 0.9], [2, 0, 1, 1, 0.2], [3, 0, 1, 1, 0.5]], dtype=float)
    np.testing.assert_array_equal(sort_by_score(table)[:, 0], [1, 3, 0, 2])  # ties keep file order
    lowest, highest = score_extrema([np.array([[0, 0, 1, 1, 2.0]]), np.zeros((0, 5)), np.array([[0, 0, 1, 1, 4.0], [0, 0, 1, 1, 3.0]])])
    assert (lowest, highest) == (2.0, 4.0)
    np.testing.assert_array_equal(normalize_scores(np.array([2.0, 4.0, 3.0]), lowest, highest), [0.0, 1.0, 0.5])
    # norm_score.m starts its max at realmin('single'): all-negative scores keep that max
    lowest, highest = score_extrema([np.array([[0, 0, 1, 1, -3.0], [0, 0, 1, 1, -1.0]])])
    assert (lowest, highest) == (-3.0, MATLAB_SINGLE_REALMIN)
    # max == min: every prediction passes every threshold
    np.testing.assert_array_equal(normalize_scores(np.array([0.7, 0.7]), 0.7, 0.7), [1.0, 1.0])


def test_threshold_ranks() -> None:
    thresholds = official_thresholds()  # 0.999, 0.998, ..., 0.0
    ranks = threshold_ranks(np.array([1.0, 0.999, 0.9985, 0.75, 0.0, -0.1]), thresholds)
    # score 0.75 first passes threshold index 249 (1 - 250/1000 = 0.75); -0.1 passes none
    np.testing.assert_array_equal(ranks, [0, 0, 1, 249, 999, 1000])


# One image, three faces (face 2 the middle one), five predictions given out of order:
#   score 1.00 on face 1 ; 0.75 on face 2 ; 0.50 duplicate of face 1 ; 0.25 on face 3 ; 0.00 background
FACES = [[0, 0, 19, 19], [100, 0, 19, 19], [200, 0, 19, 19]]
PREDICTIONS = np.array(
    [
        [200, 0, 19, 19, 0.25],
        [0, 0, 19, 19, 1.00],
        [500, 500, 19, 19, 0.00],
        [100, 0, 19, 19, 0.75],
        [1, 0, 19, 19, 0.50],
    ]
)


def test_hand_computed_image_with_keep_lists() -> None:
    # easy keeps face 1 only, medium faces 1 and 3, hard all (1-based indices as in the .mat files)
    gt = make_gt([FACES], {"easy": [[1]], "medium": [[1, 3]], "hard": [[1, 2, 3]]})
    result = evaluate_widerface({"0--Parade/img_0": PREDICTIONS}, gt, challenge=False)
    # medium: face 2 is ignored, so the 0.75 prediction is excluded (neither TP nor FP);
    # thresholds (0.75,1): TP 1/PROP 1 ; [0.5,0.75): 1/1 ; [0.25,0.5): 1/2 ; (0,0.25]: 2/3 ; 0: 2/4
    # AP = 0.5 * 1 + 0.5 * max(2/3, 1/2) = 5/6
    assert result.ap["medium"] == pytest.approx(5 / 6, abs=1e-15)
    curve = result.curves["medium"]
    k = {t: int(np.argmin(np.abs(curve.thresholds - t))) for t in (0.9, 0.6, 0.3, 0.1, 0.0)}
    assert [curve.true_positives[k[t]] for t in k] == [1, 1, 1, 2, 2]
    assert [curve.proposals[k[t]] for t in k] == [1, 1, 2, 3, 4]
    # easy: only face 1 counts; faces 2, 3 excluded, the duplicate is a false positive: AP = 1
    assert result.ap["easy"] == pytest.approx(1.0, abs=1e-15)
    # hard: TP at recall 1/3, 2/3 with precision 1, then 3/4 at recall 1: AP = 1/3 + 1/3 + 0.75/3
    assert result.ap["hard"] == pytest.approx(11 / 12, abs=1e-15)
    assert result.num_faces == {"easy": 1, "medium": 2, "hard": 3}
    assert result.mode == "full" and result.num_predictions == 5


def test_keep_list_faces_of_images_without_predictions_count_as_misses() -> None:
    gt = make_gt([FACES, [[0, 0, 10, 10]]], {s: [[1, 2, 3], [1]] for s in ("easy", "medium", "hard")})
    result = evaluate_widerface({"0--Parade/img_0": PREDICTIONS, "0--Parade/img_1": np.zeros((0, 5))}, gt, challenge=False)
    # same curve as the hard case above, recall divided by 4 faces instead of 3
    assert result.ap["hard"] == pytest.approx(11 / 12 * 3 / 4, abs=1e-15)


def test_matches_matlab_transcription_on_random_data() -> None:
    rng = np.random.default_rng(0)
    keys, boxes, preds = [], [], {}
    keep: dict[str, list[list[int]]] = {"easy": [], "medium": [], "hard": []}
    for i in range(25):
        num_faces = int(rng.integers(0, 7))
        faces = np.column_stack([rng.integers(0, 60, (num_faces, 2)), rng.integers(2, 30, (num_faces, 2))]).astype(float)
        keys.append(f"0--Parade/img_{i}")
        boxes.append(faces)
        hard = sorted(rng.choice(num_faces, size=int(rng.integers(0, num_faces + 1)), replace=False) + 1) if num_faces else []
        medium = [k for k in hard if rng.random() < 0.7]
        keep["hard"].append(hard)
        keep["medium"].append(medium)
        keep["easy"].append([k for k in medium if rng.random() < 0.6])
        num_preds = int(rng.integers(0, 12))
        if num_faces:  # jittered copies of faces (duplicates, near misses) plus noise
            base = faces[rng.integers(0, num_faces, num_preds)] + rng.integers(-3, 4, (num_preds, 4))
        else:
            base = np.column_stack([rng.integers(0, 60, (num_preds, 2)), rng.integers(2, 30, (num_preds, 2))]).astype(float)
        scores = np.round(rng.random(num_preds), 2)  # rounding creates score ties
        if i % 5 != 4:
            preds[keys[-1]] = np.column_stack([base, scores])
    gt = WiderGroundTruth(
        [WiderImage("0--Parade", k.split("/")[1], b) for k, b in zip(keys, boxes)],
        {s: [np.array(v, dtype=np.int64) - 1 for v in lists] for s, lists in keep.items()},
    )
    ours = evaluate_widerface(preds, gt, missing="empty", challenge=True)
    oracle = matlab_widerface_ap(preds, keys, boxes, keep)
    for subset in ("easy", "medium", "hard"):
        assert ours.ap[subset] == pytest.approx(oracle[subset], abs=1e-12)
    strict = matlab_widerface_ap(preds, keys, boxes, {"hard": keep["hard"]}, iou_thresh=0.75)
    assert ours.ap_per_iou["hard"][5] == pytest.approx(strict["hard"], abs=1e-12)  # IoU 0.75 is the 6th


def test_missing_prediction_files_policy() -> None:
    gt = make_gt([FACES, [[0, 0, 10, 10]]], {s: [[1, 2, 3], [1]] for s in ("easy", "medium", "hard")})
    with pytest.raises(DataError, match="1 of 2 images have no predictions.*img_1"):
        evaluate_widerface({"0--Parade/img_0": PREDICTIONS}, gt)
    empty = evaluate_widerface({"0--Parade/img_0": PREDICTIONS}, gt, missing="empty", challenge=False)
    assert empty.mode == "full" and empty.ap["hard"] == pytest.approx(11 / 16, abs=1e-15)
    assert "counted as images without detections" in empty.notes[0]
    skipped = evaluate_widerface({"0--Parade/img_0": PREDICTIONS}, gt, missing="skip", challenge=False)
    assert skipped.mode == "mini-benchmark" and skipped.partial and skipped.num_images == 1 and skipped.split_size == 2
    assert skipped.ap["hard"] == pytest.approx(11 / 12, abs=1e-15)


def test_degenerate_cases() -> None:
    gt = make_gt([FACES], {"easy": [[]], "medium": [[1]], "hard": [[1, 2, 3]]})
    same = PREDICTIONS.copy()
    same[:, 4] = 0.3
    result = evaluate_widerface({"0--Parade/img_0": same}, gt, challenge=False)
    assert any("all prediction scores are equal" in n for n in result.notes)
    assert np.isnan(result.ap["easy"]) and any(n.startswith("easy: no face") for n in result.notes)
    # equal scores: one operating point with all 5 predictions (file order kept): 3 TP / 5, recall 1
    assert result.ap["hard"] == pytest.approx(3 / 5, abs=1e-15)
    with pytest.raises(DataError, match="no keep lists"):
        evaluate_widerface({"0--Parade/img_0": same}, WiderGroundTruth(gt.images, {}, "txt"))


@pytest.mark.shared
def test_yolov7_face_predictions_give_the_published_aps(shared_data) -> None:
    from facescope.eval.widerface_runner import evaluate_predictions_on_widerface

    result = evaluate_predictions_on_widerface(shared_data / "widerface/predictions/yolov7_face", shared_data / "widerface/ground_truth")
    assert result.mode == "full" and result.num_images == 3226
    assert abs(result.ap["easy"] - 0.9324932633835993) <= 1e-9
    assert abs(result.ap["medium"] - 0.9127942909886333) <= 1e-9
    assert abs(result.ap["hard"] - 0.8297205022059916) <= 1e-9
    # the stricter challenge metric is necessarily lower, AP at IoU 0.5 is its first term
    assert result.ap_per_iou["hard"][0] == result.ap["hard"]
    assert 0.3 < result.challenge_map["hard"] < result.ap["hard"]
