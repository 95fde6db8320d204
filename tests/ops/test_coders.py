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


def test_coders_give_the_same_numbers_in_numpy_and_torch():
    """The onnxruntime path decodes in numpy with the same float32 operations as the torch path."""
    import numpy as np

    from facescope.ops.coders import BoxCoder

    torch_priors = priors()
    numpy_priors = Priors(*(t.numpy() for t in (torch_priors.centers, torch_priors.sizes, torch_priors.strides)), (1, 1))
    regs = torch.tensor([[0.3, -0.2, 1.1, 0.7], [1.0, -1.0, 0.5, 2.0]])
    points = torch.linspace(-2, 2, 20).reshape(2, 10)
    for coder in (DistanceCoder(), DeltaCoder((0.1, 0.2))):
        assert isinstance(coder, BoxCoder)
        boxes = coder.decode_boxes(numpy_priors, regs.numpy())
        assert isinstance(boxes, np.ndarray) and boxes.dtype == np.float32
        np.testing.assert_allclose(boxes, coder.decode_boxes(torch_priors, regs).numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            coder.decode_landmarks(numpy_priors, points.numpy()), coder.decode_landmarks(torch_priors, points).numpy(), rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(coder.encode_boxes(numpy_priors, boxes), regs.numpy(), atol=1e-5)


def test_delta_coder_with_rectangular_priors():
    """Width and height are separate: a DSFD-style 1.5 aspect-ratio prior decodes to its own shape."""
    rect = Priors(torch.tensor([[10.0, 20.0]]), torch.tensor([[8.0, 12.0]]), torch.tensor([4.0]), (1,))
    assert DeltaCoder().decode_boxes(rect, torch.zeros(1, 4)).tolist() == [[6.0, 14.0, 14.0, 26.0]]
