"""SHFCriterion: the batch criterion against hand-computed losses and the per-image reference."""

import math

import pytest
import torch

from facescope.errors import ConfigError
from facescope.losses.criteria import MIN_POSITIVE_SCORE, NUM_POSITIVE, build_criterion
from facescope.losses.shf import SHF_LOSS, SHFCriterion, SHFLossConfig
from facescope.models.base import DenseOutputs
from facescope.models.shf import shf_anchor_generator, shf_mnet025
from facescope.ops.coders import DeltaCoder
from facescope.structures import FaceTargets
from oracles.shf_image_loss import shf_image_loss

INPUT_HW = (32, 48)  # a 4 x 6 grid of stride 8, three anchor sizes: 3 x 24 anchors
ROWS = 4 * 6


def outputs(logits: torch.Tensor, regs: torch.Tensor) -> DenseOutputs:
    """``[B, 72, 2]`` logits and ``[B, 72, 4]`` deltas split into the three levels (anchors 16, 32, 64)."""
    return DenseOutputs(list(logits.split(ROWS, dim=1)), list(regs.split(ROWS, dim=1)), None)


def criterion(config: SHFLossConfig = SHF_LOSS) -> SHFCriterion:
    return SHFCriterion(shf_anchor_generator(), DeltaCoder((1.0, 1.0)), config)


def test_hand_computed_losses_and_the_border_from_each_images_own_size():
    # The face [24, 8, 40, 24] is exactly the 16-anchor centred at (32, 16): IoU 1, the only positive (its
    # 16-anchor neighbours shifted by 8 overlap it 128 / 384 = 1/3: ignored, but regressed; every 32- or
    # 64-anchor overlaps it <= 256 / 1024 < 0.3: negative). Image 1 is the same face in an image only 32 px
    # wide, padded to 48 in the batch: that anchor (x2 = 40 > 32) crosses its border and is ignored, so the
    # face has no positive anchor (no forced match).
    face = torch.tensor([[24.0, 8.0, 40.0, 24.0]])
    targets = [FaceTargets.from_boxes(face.clone()), FaceTargets.from_boxes(face.clone())]
    targets[1].image_hw = (32, 32)
    zeros = outputs(torch.zeros(2, 3 * ROWS, 2), torch.zeros(2, 3 * ROWS, 4))
    result = criterion()(zeros, targets, INPUT_HW)
    assert result.per_image[NUM_POSITIVE].tolist() == [1.0, 0.0]
    assert result.per_image[MIN_POSITIVE_SCORE].tolist() == [0.5, 1.0]  # softmax(0, 0); none -> 1.0
    torch.testing.assert_close(result.losses["cls"], torch.tensor(math.log(2.0)))  # every sampled anchor: ln 2
    # Box: a neighbour shifted by 8 has target dx = 8 / 16 = 0.5 (others 0); smooth-L1 with beta 1/9:
    # 0.5 - 0.5 / 9. Image 0 regresses the exact anchor (0) and 4 neighbours, over 5 anchors; image 1 only
    # the left neighbour [16, 8, 32, 24] is inside its 32 px. Batch: the mean of the two images.
    neighbour = 0.5 - 0.5 / 9
    torch.testing.assert_close(result.losses["box"], torch.tensor((4 * neighbour / 5 + neighbour) / 2))


def test_without_image_hw_the_whole_input_is_the_image():
    face = torch.tensor([[24.0, 8.0, 40.0, 24.0]])
    zeros = outputs(torch.zeros(1, 3 * ROWS, 2), torch.zeros(1, 3 * ROWS, 4))
    result = criterion()(zeros, [FaceTargets.from_boxes(face)], INPUT_HW)
    assert result.per_image[NUM_POSITIVE].tolist() == [1.0]


def test_batch_equals_the_mean_of_the_per_image_reference():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3 * ROWS, 2, generator=generator)
    regs = 0.1 * torch.randn(2, 3 * ROWS, 4, generator=generator)
    targets = [
        FaceTargets.from_boxes(torch.tensor([[4.0, 4.0, 20.0, 22.0], [18.0, 2.0, 50.0, 30.0]])),
        FaceTargets.from_boxes(torch.tensor([[9.0, 10.0, 25.0, 24.0]])),
    ]
    targets[1].image_hw = (32, 32)
    config = SHFLossConfig(anchors_per_image=20, max_positives=3)  # small, so OHEM really chooses
    result = criterion(config)(outputs(logits, regs), targets, INPUT_HW)
    priors = shf_anchor_generator().priors(INPUT_HW)
    reference = [
        shf_image_loss(logits[b], regs[b], priors, DeltaCoder((1.0, 1.0)), targets[b].boxes, hw, config.labels(), config.ohem())
        for b, hw in enumerate([INPUT_HW, (32, 32)])
    ]
    torch.testing.assert_close(result.losses["cls"], torch.stack([r.cls for r in reference]).mean())
    torch.testing.assert_close(result.losses["box"], torch.stack([r.box for r in reference]).mean())
    torch.testing.assert_close(result.per_image[MIN_POSITIVE_SCORE], torch.stack([r.min_positive_score for r in reference]))
    assert result.per_image[NUM_POSITIVE].tolist() == [float(r.num_positive_anchors) for r in reference]


def test_model_default_settings_overrides_and_gradient():
    model = shf_mnet025()
    assert build_criterion(model).config == SHF_LOSS  # the registry entry's criterion, 'shf'
    crit = build_criterion(model, {"max_positives": 32, "box_weight": 2.0})
    assert isinstance(crit, SHFCriterion) and crit.config.ohem().max_positives == 32
    with pytest.raises(ConfigError, match="unknown loss setting 'loss.max_positive'"):
        build_criterion(model, {"max_positive": 32})
    with pytest.raises(ValueError, match="max_positives <= anchors_per_image"):
        SHFLossConfig(anchors_per_image=10, max_positives=20)
    images = torch.zeros(1, 3, 64, 64)
    result = crit(model(images), [FaceTargets.from_boxes(torch.tensor([[8.0, 8.0, 40.0, 40.0]]))], (64, 64))
    result.total.backward()
    assert model.head.convs[0].weight.grad is not None and torch.isfinite(result.total)
