"""Score labels in crowds: never on top of each other, inside the image, highest scores first."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facescope.inference.visualize import MIN_DOT_FACE, MIN_FONT_SCALE, draw_detections, face_styles, place_labels, score_labels
from facescope.structures import Detections


def _dense_grid(rows: int = 12, cols: int = 20, side: int = 14, step: int = 16) -> np.ndarray:
    """A crowd: ``rows x cols`` faces of ``side`` px, ``step`` px apart (labels are ~30 px wide)."""
    ys, xs = np.mgrid[0:rows, 0:cols]
    x1, y1 = 5 + xs.ravel() * step, 5 + ys.ravel() * step
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float64)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _covers_another_face(labels, boxes) -> int:
    """How many labels cover a face other than their own."""
    return sum(
        any(_overlap(label.rect, box) for j, box in enumerate(boxes) if j != i) for i, label in enumerate(labels) if label is not None
    )


def test_labels_never_overlap_each_other_or_another_face_in_a_dense_crowd() -> None:
    boxes = _dense_grid(rows=6, cols=10, side=14, step=30)  # 16 px gaps: room for small labels only
    texts = [f"{0.99 - i * 0.002:.2f}" for i in range(len(boxes))]
    labels = place_labels(boxes, texts, (220, 340), font_scale=0.5, thickness=1)
    placed = [label for label in labels if label is not None]
    assert 10 <= len(placed) < len(boxes)  # some fit, not all
    assert _covers_another_face(labels, boxes) == 0
    for i, a in enumerate(placed):
        assert 0 <= a.rect[0] and a.rect[2] <= 340 and 0 <= a.rect[1] and a.rect[3] <= 220
        assert a.scale >= MIN_FONT_SCALE - 1e-9
        for b in placed[i + 1 :]:
            assert not _overlap(a.rect, b.rect), (a, b)
    packed = _dense_grid()  # 2 px between faces: only below the bottom row is there room for labels
    packed_labels = place_labels(packed, texts * 4, (220, 340), font_scale=0.5, thickness=1)
    assert all(label is None for label in packed_labels[:-20]) and any(packed_labels[-20:])
    assert _covers_another_face(packed_labels, packed) == 0
    # the rect covers what OpenCV draws: text size at that scale plus 1 px of background
    (w, h), base = cv2.getTextSize(placed[0].text, cv2.FONT_HERSHEY_SIMPLEX, placed[0].scale, placed[0].thickness)
    assert (placed[0].rect[2] - placed[0].rect[0], placed[0].rect[3] - placed[0].rect[1]) == (w + 2, h + base + 2)


def test_first_label_is_full_size_above_its_box_and_a_lone_face_keeps_its_label() -> None:
    labels = place_labels(np.array([[100.0, 100.0, 160.0, 170.0]]), ["0.93"], (400, 400), font_scale=0.6, thickness=2)
    (label,) = labels
    assert label is not None and label.scale == 0.6 and label.rect[3] == 100  # bottom edge on the box's top


def test_a_label_at_the_top_edge_goes_below_the_box_and_one_that_fits_nowhere_is_left_out() -> None:
    boxes = np.array([[10.0, 0.0, 40.0, 30.0]])
    (label,) = place_labels(boxes, ["0.90"], (100, 100), font_scale=0.5, thickness=1)
    assert label is not None and label.rect[1] == 31
    assert place_labels(boxes, ["0.90"], (30, 100), font_scale=0.5, thickness=1) == [None]  # no room above or below


@pytest.mark.parametrize("as_numpy", [False, True])
def test_draw_detections_takes_tensors_or_numpy_arrays(as_numpy) -> None:
    boxes = _dense_grid(3, 3, 30, 60) + 20
    scores = np.linspace(0.9, 0.5, len(boxes))
    convert = np.asarray if as_numpy else torch.as_tensor
    detections = Detections.__new__(Detections)  # bypasses the contract's tensor checks for the numpy case
    detections.boxes, detections.scores, detections.landmarks = convert(boxes), convert(scores), None
    image = np.zeros((240, 240, 3), np.uint8)
    drawn = draw_detections(image, detections)
    assert drawn.shape == image.shape and (drawn != 0).any() and not image.any()
    assert (drawn[13:16, 21:40] != 0).any()  # the first label sits just above the first box


def test_labels_replace_scores_and_must_match_the_faces():
    image = np.zeros((200, 200, 3), np.uint8)
    faces = Detections(np.array([[50, 60, 120, 150]], np.float32), np.array([0.9], np.float32))
    plain = draw_detections(image, faces, show_scores=False)
    labelled = draw_detections(image, faces, show_scores=False, labels=["#7"])
    assert (labelled != plain)[:60].any() and (labelled == plain)[60:].all()  # the label sits above the box
    with pytest.raises(ValueError, match="2 labels for 1 faces"):
        draw_detections(image, faces, labels=["#1", "#2"])


def test_sizes_follow_the_face_and_dots_stay_inside_or_are_left_out() -> None:
    boxes = np.array([[0, 0, 12, 15], [50, 50, 90, 100], [200, 0, 600, 500]], dtype=np.float64)
    small, medium, large = face_styles(boxes, (2000, 2000))
    assert small.dot_radius == 0 and small.font_scale == MIN_FONT_SCALE  # under MIN_DOT_FACE px: no dots
    assert small.line <= medium.line < large.line and small.font_scale < medium.font_scale < large.font_scale
    assert medium.dot_radius >= 1 and large.dot_radius > medium.dot_radius and MIN_DOT_FACE > 12
    points = np.array([[[3, 3], [9, 3], [6, 8], [4, 12], [8, 12]], [[60, 65], [80, 65], [70, 75], [62, 90], [78, 90]],
                       [[300, 200], [500, 200], [400, 300], [320, 400], [480, 400]]], dtype=np.float32)  # fmt: skip
    points[1, 4] = (89.5, 99.5)  # a point on the box corner: its dot would stick out of the face
    drawn = draw_detections(np.zeros((600, 700, 3), np.uint8), Detections(boxes, np.array([0.9, 0.8, 0.7]), points), show_scores=False)
    dot_colours = {(255, 0, 0), (0, 0, 255), (255, 0, 255), (0, 255, 255)}  # the landmark colours that are not the box's
    coloured = np.argwhere([[tuple(px) in dot_colours for px in row] for row in drawn[:120, :120]])
    assert len(coloured) and all(50 <= x <= 90 and 50 <= y <= 100 for y, x in coloured)  # only the medium face's, inside it
    assert tuple(drawn[99, 89]) not in dot_colours


CROWD = ["t1.jpg", "selfie.jpg", "curve_test.jpg", "worlds-largest-selfie.jpg", pytest.param("SSH_t2.jpg", marks=pytest.mark.slow)]


@pytest.mark.shared
@pytest.mark.parametrize("name", CROWD)
def test_no_label_covers_another_face_on_the_crowd_photos(name, shared_data) -> None:
    """The issue's setting: the default model at the original size, score >= 0.3 (805 faces on selfie.jpg with SCRFD)."""
    from facescope.inference.detector import Detector

    detector = _crowd_detector()
    image = cv2.imread(str(shared_data / "images/crowd" / name))
    faces = detector.detect(image, color_order="bgr")
    labels = score_labels(faces.boxes, faces.scores, image.shape[:2])
    assert len(faces) >= 6 and sum(label is not None for label in labels) >= min(6, len(faces))
    assert _covers_another_face(labels, faces.boxes) == 0


_DETECTOR = []


def _crowd_detector():
    from facescope.inference.detector import Detector

    if not _DETECTOR:
        _DETECTOR.append(Detector(input_size="original", score_thresh=0.3))
    return _DETECTOR[0]
