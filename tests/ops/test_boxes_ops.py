import torch

from facescope.ops.boxes import clip_boxes, nms


def test_nms_pixel_offset_changes_the_decision_as_computed_by_hand():
    # Two 10x10 boxes shifted by 5 px in x: continuous IoU = 50 / 150 = 0.333;
    # "+1" IoU = (6 * 11) / (2 * 121 - 66) = 66 / 176 = 0.375.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.35, pixel_offset=0.0).tolist() == [0, 1]
    assert nms(boxes, scores, 0.35, pixel_offset=1.0).tolist() == [0]
    assert nms(boxes, scores, 0.375, pixel_offset=1.0).tolist() == [0, 1]  # kept when IoU <= threshold


def test_nms_returns_indices_by_decreasing_score():
    boxes = torch.tensor([[0.0, 0, 10, 10], [100, 100, 110, 110], [200, 200, 210, 210]])
    assert nms(boxes, torch.tensor([0.1, 0.9, 0.5]), 0.4).tolist() == [1, 2, 0]


def test_clip_boxes():
    clipped = clip_boxes(torch.tensor([[-5.0, -1.0, 50.0, 30.0]]), height=20, width=40)
    assert clipped.tolist() == [[0.0, 0.0, 40.0, 20.0]]
