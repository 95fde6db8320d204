"""Criteria on constructed cases: ignored faces, per-image statistics, several shots, typed overrides,
and the pluggable classification losses."""

import math

import pytest
import torch

from facescope.assign.labels import IGNORE
from facescope.errors import ConfigError
from facescope.losses.classification import LargeMarginCosine, SigmoidCrossEntropy, SoftmaxCrossEntropy
from facescope.losses.criteria import MultiShotCriterion, apply_loss_overrides, build_criterion
from facescope.losses.multibox import PAPER_LOSS, MultiBoxCriterion
from facescope.losses.scrfd import SCRFDCriterion, SCRFDLossConfig
from facescope.losses.targets import assign_batch
from facescope.models.base import DenseOutputs
from facescope.ops.anchors import AnchorGenerator, Priors
from facescope.ops.coders import DeltaCoder, DistanceCoder
from facescope.structures import FaceTargets


class FixedPriors:
    """A prior generator that returns the same priors for any input."""

    def __init__(self, centers: list[list[float]], side: float = 10.0) -> None:
        num = len(centers)
        self._priors = Priors(torch.tensor(centers), torch.full((num, 2), side), torch.full((num,), 8.0), (num,))

    def priors(self, input_hw, device="cpu", dtype=torch.float32) -> Priors:
        return self._priors


def _outputs(num: int, batch: int = 1, seed: int = 0) -> DenseOutputs:
    generator = torch.Generator().manual_seed(seed)
    return DenseOutputs(
        [torch.randn(batch, num, 2, generator=generator)],
        [torch.randn(batch, num, 4, generator=generator)],
        [torch.randn(batch, num, 10, generator=generator)],
    )


def _faces(boxes: list[list[float]], ignore: list[bool] | None = None) -> FaceTargets:
    box_tensor = torch.tensor(boxes).reshape(-1, 4)
    centres = (box_tensor[:, :2] + box_tensor[:, 2:]) / 2
    points = centres[:, None, :].repeat(1, 5, 1) + torch.arange(5.0)[None, :, None]
    flags = torch.tensor(ignore) if ignore is not None else None
    return FaceTargets(box_tensor, points, torch.ones(len(boxes), 5, dtype=torch.bool), flags)


# Anchors of side 10 at y = 5: A0 is the real face R = [0, 0, 10, 10]; A1 is far away; A2 is the
# ignored face I = [40, 0, 50, 10]; A3 = [43, 0, 53, 10] overlaps I by 70 / 130 = 0.54 (>= 0.3);
# A4 = [50, 0, 60, 10] touches I (IoU 0); A5 = [-5, 0, 5, 10] overlaps R by 50 / 150 = 1/3 (paper:
# ignored by the 0.3-0.5 band, with or without I).
CENTRES = [[5.0, 5.0], [25.0, 25.0], [45.0, 5.0], [48.0, 5.0], [55.0, 5.0], [0.0, 5.0]]
NEAR_IGNORED_FACE = [2, 3]


def test_an_ignored_face_ignores_its_anchors_and_the_loss_equals_the_loss_without_them():
    criterion = MultiBoxCriterion(FixedPriors(CENTRES), DeltaCoder((0.1, 0.2)), PAPER_LOSS)
    target = _faces([[0, 0, 10, 10], [40, 0, 50, 10]], ignore=[False, True])
    labels = assign_batch(criterion.assigner, criterion.anchor_generator.priors((64, 64)), [target]).labels
    assert labels.tolist() == [[1, 0, IGNORE, IGNORE, 0, IGNORE]]
    outputs = _outputs(len(CENTRES))
    with_ignored = criterion(outputs, [target], (64, 64))

    kept = [i for i in range(len(CENTRES)) if i not in NEAR_IGNORED_FACE]
    reduced = MultiBoxCriterion(FixedPriors([CENTRES[i] for i in kept]), DeltaCoder((0.1, 0.2)), PAPER_LOSS)
    reduced_outputs = DenseOutputs(*([t[:, kept]] for t in (outputs.cls_logits[0], outputs.box_regs[0], outputs.landmark_regs[0])))
    without = reduced(reduced_outputs, [_faces([[0, 0, 10, 10]])], (64, 64))
    assert with_ignored.losses.keys() == without.losses.keys()
    for name in without.losses:
        assert with_ignored.losses[name].item() == pytest.approx(without.losses[name].item(), rel=1e-6), name
    # Had the face not been ignored, it would have been learnt and its anchors trained.
    learnt = criterion(outputs, [_faces([[0, 0, 10, 10], [40, 0, 50, 10]])], (64, 64))
    assert learnt.per_image["num_positive"].item() == 3 and with_ignored.per_image["num_positive"].item() == 1


def test_scrfd_criterion_takes_no_loss_from_anchors_near_an_ignored_face():
    generator = AnchorGenerator((8, 16), ((16,), (32,)))  # 32x32 input: 16 + 4 priors
    criterion = SCRFDCriterion(generator, DistanceCoder(), SCRFDLossConfig(atss_topk=2))
    target = FaceTargets.from_boxes(torch.tensor([[2.0, 3, 18, 19]]), ignore=torch.tensor([True]))
    labels = assign_batch(criterion.assigner, generator.priors((32, 32)), [target]).labels[0]
    ignored = labels == IGNORE
    assert ignored.sum().item() == 1  # the one anchor A would have taken (tests/assign/test_atss.py)
    torch.manual_seed(0)
    logits, regs = torch.randn(1, 20, 1), torch.rand(1, 20, 4)
    base = criterion(DenseOutputs([logits], [regs]), [target], (32, 32))
    changed_logits = torch.where(ignored[None, :, None], torch.full_like(logits, 9.0), logits)
    changed = criterion(DenseOutputs([changed_logits], [regs]), [target], (32, 32))
    assert changed.losses["cls"].item() == base.losses["cls"].item() > 0
    assert base.losses["box"].item() == 0.0 and base.per_image["num_positive"].tolist() == [0]


def test_per_image_statistics_on_a_constructed_batch():
    # Image 0: face R; A0 (IoU 1) and A6 = [2, 0, 12, 10] (IoU 80 / 120 = 0.67) are positive with
    # softmax face scores 0.5 and 0.75. Image 1 has no faces: no positives, minimum score 1.0.
    criterion = MultiBoxCriterion(FixedPriors(CENTRES + [[7.0, 5.0]]), DeltaCoder((0.1, 0.2)), PAPER_LOSS)
    outputs = _outputs(7, batch=2)
    outputs.cls_logits[0][0, 0] = torch.tensor([0.0, 0.0])
    outputs.cls_logits[0][0, 6] = torch.tensor([0.0, math.log(3.0)])
    result = criterion(outputs, [_faces([[0, 0, 10, 10]]), _faces([])], (64, 64))
    assert result.per_image["num_positive"].tolist() == [2, 0]
    assert result.per_image["min_positive_score"].tolist() == pytest.approx([0.5, 1.0])


def test_multi_shot_criterion_is_the_weighted_sum_of_its_shots():
    final = MultiBoxCriterion(FixedPriors(CENTRES), DeltaCoder((0.1, 0.2)), PAPER_LOSS)
    first = MultiBoxCriterion(FixedPriors(CENTRES[:4], side=5.0), DeltaCoder((0.1, 0.2)), PAPER_LOSS)  # half-size anchors
    final_out, first_out = _outputs(6, seed=1), _outputs(4, seed=2)
    outputs = DenseOutputs(final_out.cls_logits, final_out.box_regs, final_out.landmark_regs, aux=(first_out,))
    targets = [_faces([[0, 0, 10, 10], [42, 2, 48, 8]])]
    combined = MultiShotCriterion([final, first], weights=[1.0, 0.5])(outputs, targets, (64, 64))
    parts = final(final_out, targets, (64, 64)), first(first_out, targets, (64, 64))
    assert set(combined.losses) == {"cls", "box", "landmark", "aux1_cls", "aux1_box", "aux1_landmark"}
    for name in ("cls", "box", "landmark"):
        assert combined.losses[name].item() == parts[0].losses[name].item()
        assert combined.losses[f"aux1_{name}"].item() == pytest.approx(0.5 * parts[1].losses[name].item())
    assert combined.total.item() == pytest.approx(parts[0].total.item() + 0.5 * parts[1].total.item())
    assert combined.per_image["num_positive"].tolist() == parts[0].per_image["num_positive"].tolist()
    with pytest.raises(ValueError, match="2 shots but the criterion scores 1"):
        MultiShotCriterion([final])(outputs, targets, (64, 64))


class _StubModel:
    default_loss_config = PAPER_LOSS

    def make_criterion(self, config):
        return config


def test_overrides_are_typed_and_strict():
    config = build_criterion(_StubModel(), {"box_weight": 1, "neg_iou": None})  # the stub returns its config
    assert config.box_weight == 1.0 and isinstance(config.box_weight, float)
    assert config.neg_iou is None and config.pos_iou == PAPER_LOSS.pos_iou  # the rest stays the model's default
    with pytest.raises(ConfigError, match=r"unknown loss setting 'loss.box_wieght' \(did you mean 'box_weight'\?\)"):
        apply_loss_overrides(PAPER_LOSS, {"box_wieght": 1.0})
    with pytest.raises(ConfigError, match=r"'min_negatives' must be int, got 'three'"):
        apply_loss_overrides(PAPER_LOSS, {"min_negatives": "three"})
    assert apply_loss_overrides(PAPER_LOSS, {}) is PAPER_LOSS


def test_a_model_without_a_criterion_is_a_config_error():
    class NoLoss:
        default_loss_config = None

    with pytest.raises(ConfigError, match="NoLoss has no training criterion"):
        build_criterion(NoLoss())


def test_classification_losses_hand_values():
    labels = torch.tensor([[1, 0]])
    softmax = SoftmaxCrossEntropy()(torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]]), labels)
    assert softmax[0].tolist() == pytest.approx([math.log(2), math.log(4)])
    sigmoid = SigmoidCrossEntropy()(torch.tensor([[[0.0], [math.log(3.0)]]]), labels)
    assert sigmoid[0].tolist() == pytest.approx([math.log(2), math.log(4)])  # -log(1/2), -log(1 - 3/4)
    # Cosines (0.2, 0.6) for a face, s = 2, m = 0.1: logits 2 * (0.2, 0.6 - 0.1) = (0.4, 1.0),
    # CE = log(1 + e^(0.4 - 1.0)).
    margin = LargeMarginCosine(scale=2.0, margin=0.1)
    assert margin(torch.tensor([[[0.2, 0.6]]]), torch.tensor([[1]])).item() == pytest.approx(math.log1p(math.exp(-0.6)))
    assert margin.scores(torch.tensor([[[0.0, 0.0]]])).item() == pytest.approx(0.5)


def test_the_classification_loss_plugs_into_the_multibox_criterion():
    # A sigmoid head (one logit) trained with the multibox matching and mining.
    criterion = MultiBoxCriterion(FixedPriors(CENTRES), DeltaCoder((0.1, 0.2)), PAPER_LOSS, cls_loss=SigmoidCrossEntropy())
    outputs = DenseOutputs([torch.zeros(1, 6, 1)], [torch.zeros(1, 6, 4)])
    result = criterion(outputs, [_faces([[0, 0, 10, 10]])], (64, 64))
    # 1 positive + 3 hard negatives (A1, A2, A3, A4 are negative, all at loss log 2; A5 is ignored).
    assert result.losses["cls"].item() == pytest.approx(4 * math.log(2))
    assert "landmark" not in result.losses
