import torch

from facescope.ops.anchors import Priors
from facescope.ops.coders import DeltaCoder, DistanceCoder


def priors():
    return Priors(
        centers=torch.tensor([[16.0, 8.0], [100.0, 50.0]]),
        sizes=torch.tensor([[16.0, 16.0], [64.0, 64.0]]),
        strides=torch.tensor([8.0, 16.0]),
        num_per_level=(1, 1),
    )


def test_distance_coder_by_hand():
    boxes = DistanceCoder().decode_boxes(priors(), torch.tensor([[1.0, 0.5, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    # x1 = 16 - 1*8, y1 = 8 - 0.5*8, x2 = 16 + 2*8, y2 = 8 + 1*8
    assert boxes.tolist() == [[8.0, 4.0, 32.0, 16.0], [84.0, 34.0, 116.0, 66.0]]
    points = DistanceCoder().decode_landmarks(priors(), torch.arange(20, dtype=torch.float32).reshape(2, 10))
    assert points[0, 1].tolist() == [16 + 2 * 8, 8 + 3 * 8]
    assert points[1, 4].tolist() == [100 + 18 * 16, 50 + 19 * 16]


def test_delta_coder_by_hand():
    regs = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.0, 5.0]])
    boxes = DeltaCoder().decode_boxes(priors(), regs)
    assert boxes[0].tolist() == [8.0, 0.0, 24.0, 16.0]
    # centre (100 + 0.1*64, 50 - 0.1*64) = (106.4, 43.6); size (64, 64 * e)
    expected = torch.tensor([106.4 - 32, 43.6 - 32 * torch.e, 106.4 + 32, 43.6 + 32 * torch.e])
    assert torch.allclose(boxes[1], expected, atol=1e-4)


def test_coders_round_trip():
    boxes = torch.tensor([[3.0, 2.0, 40.0, 21.0], [60.0, 20.0, 150.0, 99.0]])
    points = torch.rand(2, 5, 2) * 100
    for coder in (DistanceCoder(), DeltaCoder()):
        assert torch.allclose(coder.decode_boxes(priors(), coder.encode_boxes(priors(), boxes)), boxes, atol=1e-4)
        assert torch.allclose(coder.decode_landmarks(priors(), coder.encode_landmarks(priors(), points)), points, atol=1e-4)
