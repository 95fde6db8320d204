import numpy as np
import pytest
import torch

from facescope.models.spec import InputSpec, ResizeSpec
from facescope.inference.preprocess import keep_original, letterbox, to_original, to_tensor
from facescope.structures import Detections

SPEC = InputSpec()


def test_insightface_letterbox_by_hand():
    image = np.zeros((886, 1280, 3), np.uint8)  # landscape: width-limited
    r = letterbox(image, ResizeSpec("letterbox", (640, 640)), 32)
    # new_w = 640, new_h = int(640 * 886 / 1280) = int(443.0) = 443; one scale new_h / h for both axes.
    assert r.image.shape == (443, 640, 3) and r.input_hw == (640, 640)
    assert r.scale_xy == (443 / 886, 443 / 886)
    portrait = letterbox(np.zeros((1000, 333, 3), np.uint8), ResizeSpec("letterbox", (640, 640)), 32)
    assert portrait.image.shape == (640, int(640 / (1000 / 333)), 3)  # int(213.12) = 213


def test_mmdet_letterbox_rounds_and_uses_two_scales():
    r = letterbox(np.zeros((333, 1000, 3), np.uint8), ResizeSpec("letterbox", (640, 640), rounding="round", scale_mode="per_axis"), 32)
    # factor 0.64: w = int(640.0 + .5) = 640, h = int(213.12 + .5) = 213
    assert r.image.shape == (213, 640, 3) and r.scale_xy == (640 / 1000, 213 / 333)


def test_letterbox_rounds_canvas_up_to_divisor():
    r = letterbox(np.zeros((100, 100, 3), np.uint8), ResizeSpec("letterbox", (600, 600)), 32)
    assert r.input_hw == (608, 608) and r.image.shape == (600, 600, 3)


def test_to_tensor_normalises_and_pads():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    r = keep_original(image, ResizeSpec("original", size_divisor=4))
    assert r.input_hw == (4, 4)
    batch = to_tensor([r], SPEC, pad_value=127.5)
    assert batch.shape == (1, 3, 4, 4)
    # RGB order: channel 2 is blue; (255 - 127.5) / 128 = 0.99609375; red (0 - 127.5)/128
    assert batch[0, 2, 0, 0].item() == pytest.approx(0.99609375)
    assert batch[0, 0, 0, 0].item() == pytest.approx(-0.99609375)
    assert torch.all(batch[:, :, 2:, :] == 0) and torch.all(batch[:, :, :, 3:] == 0)  # pad 127.5 -> 0


def test_to_original_inverts_the_scale():
    r = letterbox(np.zeros((886, 1280, 3), np.uint8), ResizeSpec(), 32)
    dets = Detections(np.array([[10.0, 20.0, 30.0, 40.0]]), np.array([0.9]), np.ones((1, 5, 2)) * 443)
    back = to_original(dets, r)
    assert np.allclose(back.boxes, [[20.0, 40.0, 60.0, 80.0]])
    assert np.allclose(back.landmarks, np.full((1, 5, 2), 886.0))
