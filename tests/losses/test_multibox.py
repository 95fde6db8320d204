"""OHEM selection and hand-computed multibox criterion losses."""

import math

import pytest
import torch

from facescope.losses.multibox import PORT_LOSS, MultiBoxCriterion, MultiBoxLossConfig, ohem_negative_mask
from facescope.losses.smooth_l1 import smooth_l1_sum
from facescope.models.base import DenseOutputs
from facescope.ops.anchors import Priors
from facescope.ops.coders import DeltaCoder
from facescope.structures import FaceTargets


def test_ohem_keeps_the_hardest_negatives_per_image():
    losses = torch.tensor([[5.0, 1.0, 4.0, 3.0, 2.0, 6.0]])
    labels = torch.tensor([[1, 0, 0, 0, -1, 0]])  # one positive, one ignored
    assert ohem_negative_mask(losses, labels, neg_pos_ratio=2).tolist() == [[False, False, True, False, False, True]]
    # More wanted than available: every negative, never the ignored or positive anchor.
    assert ohem_negative_mask(losses, labels, neg_pos_ratio=10).tolist() == [[False, True, True, True, False, True]]


def test_ohem_is_per_image_and_min_negatives_covers_images_without_faces():
    losses = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    labels = torch.tensor([[1, 0, 0], [0, 0, 0]])
    assert ohem_negative_mask(losses, labels, 1).tolist() == [[False, False, True], [False, False, False]]
    assert ohem_negative_mask(losses, labels, 1, min_negatives=1).tolist() == [[False, False, True], [True, False, False]]


def test_smooth_l1_sum_hand_values():
    pred = torch.tensor([1.0, 0.5, -2.0])
    assert smooth_l1_sum(pred, torch.zeros(3)).item() == pytest.approx(0.5 + 0.125 + 1.5)
    assert smooth_l1_sum(pred, torch.zeros(3), weight=torch.tensor([1.0, 0.0, 1.0])).item() == pytest.approx(2.0)


class FixedPriors:
    """A prior generator that returns the same priors for any input."""

    def __init__(self, priors: Priors) -> None:
        self._priors = priors

    def priors(self, input_hw, device="cpu", dtype=torch.float32) -> Priors:
        return self._priors


def _two_priors() -> Priors:
    # P0 covers the face exactly, P1 is elsewhere.
    return Priors(torch.tensor([[5.0, 5.0], [25.0, 25.0]]), torch.full((2, 2), 10.0), torch.full((2,), 8.0), (2,))


def _face(valid: list[bool]) -> FaceTargets:
    return FaceTargets(
        torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
        torch.full((1, 5, 2), 5.0) + torch.tensor([1.0, 0.0]),  # every point at (6, 5): delta (1, 0) / (0.1 * 10)
        torch.tensor([valid]),
    )


def _criterion(config: MultiBoxLossConfig = PORT_LOSS) -> MultiBoxCriterion:
    return MultiBoxCriterion(FixedPriors(_two_priors()), DeltaCoder((0.1, 0.2)), config)


def _outputs(cls_logits, box_regs, landmark_regs) -> DenseOutputs:
    return DenseOutputs([cls_logits], [box_regs], [landmark_regs])


def test_multibox_loss_hand_computed():
    cls_logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])  # CE: log 2 (face), log 4 (background)
    box_regs = torch.tensor([[[1.0, 0.0, 0.0, 0.5], [9.0, 9.0, 9.0, 9.0]]])  # P1's regression is ignored
    landmark_regs = torch.zeros(1, 2, 10)  # the face's target is (1, 0) for every point
    result = _criterion()(_outputs(cls_logits, box_regs, landmark_regs), [_face([True] * 5)], (32, 32))
    losses = result.losses
    assert losses["cls"].item() == pytest.approx(3 * math.log(2))  # (log 2 + log 4) / 1 positive
    assert losses["box"].item() == pytest.approx(2.0 * (0.5 + 0.125))  # loc weight 2
    assert losses["landmark"].item() == pytest.approx(5 * 0.5)  # five x-deltas of 1
    assert result.per_image["num_positive"].tolist() == [1]
    assert result.per_image["min_positive_score"].tolist() == pytest.approx([0.5])  # softmax of (0, 0)


def test_landmark_loss_skips_unannotated_points_and_weights_apply():
    config = MultiBoxLossConfig(cls_weight=0.5, box_weight=0.25, landmark_weight=0.1)
    outputs = _outputs(torch.zeros(1, 2, 2), torch.zeros(1, 2, 4), torch.zeros(1, 2, 10))
    losses = _criterion(config)(outputs, [_face([True, True, True, False, False])], (32, 32)).losses
    assert losses["landmark"].item() == pytest.approx(0.1 * 3 * 0.5)
    assert losses["box"].item() == 0.0
    assert losses["cls"].item() == pytest.approx(0.5 * 2 * math.log(2))


def test_faces_without_any_landmark_give_zero_landmark_loss():
    outputs = _outputs(torch.zeros(1, 2, 2), torch.ones(1, 2, 4), torch.ones(1, 2, 10))
    losses = _criterion()(outputs, [_face([False] * 5)], (32, 32)).losses
    assert losses["landmark"].item() == 0.0 and losses["box"].item() > 0
