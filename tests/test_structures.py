import subprocess
import sys

import numpy as np
import pytest
import torch

from facescope.structures import Detections, FaceTargets


def test_detections_validates_shapes():
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\]"):
        Detections(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match=r"scores must have shape \[3\]"):
        Detections(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match=r"landmarks must have shape \[3, 5, 2\]"):
        Detections(np.zeros((3, 4)), np.zeros(3), np.zeros((3, 4, 2)))


def test_detections_are_float32_numpy_json_round_trip_and_indexing():
    dets = Detections(
        np.array([[1.0, 2.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]]),
        np.array([0.9, 0.3]),
        np.arange(20, dtype=np.float64).reshape(2, 5, 2),
    )
    assert isinstance(dets.boxes, np.ndarray) and dets.boxes.dtype == np.float32 and dets.landmarks.dtype == np.float32
    data = dets.to_dict()
    assert data["faces"][0] == {"box": [1.0, 2.0, 30.0, 40.0], "score": 0.9, "landmarks": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]}
    back = Detections.from_dict(data)
    assert np.array_equal(back.boxes, dets.boxes) and np.array_equal(back.landmarks, dets.landmarks)
    high = dets[dets.scores > 0.5]
    assert len(high) == 1 and high.landmarks.shape == (1, 5, 2)
    assert len(Detections.empty()) == 0 and Detections.empty(with_landmarks=True).landmarks.shape == (0, 5, 2)


def test_torch_edge_conversion_round_trips():
    boxes, scores = torch.tensor([[1.5, 2.0, 3.0, 4.0]]), torch.tensor([0.75])
    dets = Detections.from_torch(boxes, scores, torch.ones(1, 5, 2))
    assert dets.boxes.tolist() == [[1.5, 2.0, 3.0, 4.0]] and dets.scores.dtype == np.float32
    back_boxes, back_scores, back_landmarks = dets.to_torch()
    assert torch.equal(back_boxes, boxes) and torch.equal(back_scores, scores) and back_landmarks.shape == (1, 5, 2)


def test_structures_import_without_torch():
    code = "import sys, facescope.structures as s; s.Detections.empty(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_face_targets_from_boxes_has_no_landmarks():
    targets = FaceTargets.from_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert targets.landmark_valid.sum() == 0 and targets.landmarks.shape == (1, 5, 2)


def _three_faces() -> Detections:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 50.0], [5.0, 5.0, 6.0, 6.0]])
    return Detections(boxes, np.array([0.9, 0.7, 0.2]), np.arange(30, dtype=np.float64).reshape(3, 5, 2))


def test_detections_behave_like_a_sequence_of_faces():
    from facescope.structures import Face

    dets = _three_faces()
    first, last = dets[0], dets[-1]
    assert isinstance(first, Face) and first.box.tolist() == [0.0, 0.0, 10.0, 10.0] and first.score == pytest.approx(0.9)
    assert first.landmarks.shape == (5, 2) and last.score == pytest.approx(0.2) and dets[np.int64(1)].box[3] == 50.0
    assert [face.score for face in dets] == pytest.approx([0.9, 0.7, 0.2])
    with pytest.raises(IndexError, match="face index 3 out of range for 3 faces"):
        dets[3]
    head = dets[:2]
    assert isinstance(head, Detections) and len(head) == 2 and head.landmarks.shape == (2, 5, 2)
    masked = dets[dets.scores > 0.5]
    assert isinstance(masked, Detections) and masked.scores.tolist() == pytest.approx([0.9, 0.7])
    assert dets[[2, 0]].scores.tolist() == pytest.approx([0.2, 0.9]) and len(dets[[]]) == 0
    assert list(Detections.empty()) == [] and dets[1:] == Detections(dets.boxes[1:], dets.scores[1:], dets.landmarks[1:])


def test_detections_json_contract_and_short_repr():
    import json

    dets = _three_faces()
    data = json.loads(dets.to_json())
    assert data == dets.to_dict() and list(data) == ["faces"] and len(data["faces"]) == 3
    assert data["faces"][1] == {"box": [20.0, 20.0, 40.0, 50.0], "score": 0.7,
                                "landmarks": [[10, 11], [12, 13], [14, 15], [16, 17], [18, 19]]}  # fmt: skip
    no_points = Detections(dets.boxes, dets.scores)
    assert "landmarks" not in json.loads(no_points.to_json())["faces"][0]
    assert repr(dets) == "Detections(3 faces with landmarks, best score 0.900)"
    assert repr(Detections.empty()) == "Detections(0 faces without landmarks)"
    assert repr(dets[0]) == "Face(box=[0.0, 0.0, 10.0, 10.0], score=0.900, 5 landmarks)"
    assert len(repr(Detections(np.zeros((5000, 4)), np.zeros(5000)))) < 80
