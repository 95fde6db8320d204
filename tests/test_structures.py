import pytest
import torch

from facescope.structures import Detections, FaceTargets


def test_detections_validates_shapes():
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\]"):
        Detections(torch.zeros(3, 5), torch.zeros(3))
    with pytest.raises(ValueError, match=r"scores must have shape \[3\]"):
        Detections(torch.zeros(3, 4), torch.zeros(2))
    with pytest.raises(ValueError, match=r"landmarks must have shape \[3, 5, 2\]"):
        Detections(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3, 4, 2))


def test_detections_json_round_trip_and_indexing():
    dets = Detections(
        torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]]),
        torch.tensor([0.9, 0.3]),
        torch.arange(20, dtype=torch.float32).reshape(2, 5, 2),
    )
    data = dets.to_dict()
    assert data["faces"][0] == {"box": [1.0, 2.0, 30.0, 40.0], "score": 0.9, "landmarks": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]}
    back = Detections.from_dict(data)
    assert torch.equal(back.boxes, dets.boxes) and torch.equal(back.landmarks, dets.landmarks)
    high = dets[dets.scores > 0.5]
    assert len(high) == 1 and high.landmarks.shape == (1, 5, 2)
    assert len(Detections.empty()) == 0 and Detections.empty(with_landmarks=True).landmarks.shape == (0, 5, 2)


def test_face_targets_from_boxes_has_no_landmarks():
    targets = FaceTargets.from_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert targets.landmark_valid.sum() == 0 and targets.landmarks.shape == (1, 5, 2)
