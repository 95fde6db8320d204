"""Losses against closed-form values."""

import math

import pytest
import torch

from facescope.losses.gfl import quality_focal_loss
from facescope.losses.iou import aligned_iou, diou_loss
from facescope.losses.smooth_l1 import smooth_l1_sum


def test_quality_focal_loss_closed_form():
    logits = torch.tensor([0.0, 0.0, math.log(3.0)])
    quality = torch.tensor([1.0, 0.0, 0.5])
    # BCE(0, 1) = BCE(0, 0) = ln 2 with |q - 0.5|^2 = 0.25; sigmoid(ln 3) = 0.75:
    # BCE = -(0.5 ln 0.75 + 0.5 ln 0.25) = 0.836988, modulated by 0.25^2.
    expected = torch.tensor([math.log(2) * 0.25, math.log(2) * 0.25, 0.836988 * 0.0625])
    assert torch.allclose(quality_focal_loss(logits, quality), expected, atol=1e-6)


def test_diou_and_aligned_iou_closed_form():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    target = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 4.0, 4.0]])
    # IoU 2/6; centre distance^2 = 1; enclosing box 3x2 -> diagonal^2 = 13.
    assert diou_loss(pred, target).tolist() == pytest.approx([1 - 1 / 3 + 1 / 13, 0.0], abs=1e-5)
    assert aligned_iou(pred, target).tolist() == pytest.approx([1 / 3, 1.0], abs=1e-6)
    assert diou_loss(torch.zeros((0, 4)), torch.zeros((0, 4))).shape == (0,)


def test_smooth_l1_with_beta_one_ninth():
    pred = torch.tensor([[0.05, 1.0]])
    target = torch.zeros(1, 2)
    # 0.5 * 0.05^2 * 9 = 0.01125 (quadratic part); 1.0 - 1/18 = 0.944444 (linear part)
    assert smooth_l1_sum(pred, target, 1.0 / 9.0, torch.ones(1, 2)).item() == pytest.approx(0.01125 + 0.9444444, abs=1e-6)
    assert smooth_l1_sum(pred, target, 1.0 / 9.0, torch.tensor([[0.0, 2.0]])).item() == pytest.approx(2 * 0.9444444, abs=1e-6)
