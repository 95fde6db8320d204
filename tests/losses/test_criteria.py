"""Criteria on constructed cases: ignored faces, per-image statistics, several shots, typed overrides,
and the pluggable classification losses."""

import dataclasses
import math

import pytest
import torch

from facescope.assign.labels import IGNORE
from facescope.errors import ConfigError
from facescope.losses.classification import LargeMarginCosine, SigmoidCrossEntropy, SoftmaxCrossEntropy
from facescope.losses.criteria import CRITERIA, MultiShotCriterion, apply_loss_overrides, build_criterion
from facescope.losses.multibox import DSFD_LOSS, PAPER_LOSS, PORT_LOSS, MultiBoxCriterion
from facescope.losses.scrfd import SCRFDCriterion, SCRFDLossConfig
from facescope.losses.targets import assign_batch
from facescope.models import create_model, get_model_entry
from facescope.models.base import DenseOutputs
from facescope.models.registry import entries
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


def test_overrides_are_typed_and_strict():
    config = build_criterion(create_model("retinaface_paper_r50", deformable=False), {"box_weight": 1, "neg_iou": None}).config
    assert config.box_weight == 1.0 and isinstance(config.box_weight, float)
    assert config.neg_iou is None and config.pos_iou == PAPER_LOSS.pos_iou  # the rest stays the entry's default
    with pytest.raises(ConfigError, match=r"unknown loss setting 'loss.box_wieght' \(did you mean 'box_weight'\?\)"):
        apply_loss_overrides(PAPER_LOSS, {"box_wieght": 1.0})
    with pytest.raises(ConfigError, match=r"'min_negatives' must be int, got 'three'"):
        apply_loss_overrides(PAPER_LOSS, {"min_negatives": "three"})
    assert apply_loss_overrides(PAPER_LOSS, {}) is PAPER_LOSS


def test_every_registry_entry_names_a_registered_criterion_and_the_recipe_may_name_another():
    assert {entry.name: entry.criterion in CRITERIA for entry in entries()} == {entry.name: True for entry in entries()}
    assert get_model_entry("dsfd_vgg16").criterion == "dsfd_pal"
    assert get_model_entry("retinaface_mnet025").criterion == "retinaface_port"
    model = create_model("retinaface_mnet025")
    assert build_criterion(model).config == PORT_LOSS
    assert build_criterion(model, {"criterion": "dsfd_pal"}).config == DSFD_LOSS  # one shot: one multibox criterion
    with pytest.raises(ConfigError, match=r"unknown loss.criterion 'dsfd_pl' \(did you mean 'dsfd_pal'\?\); valid: \["):
        build_criterion(model, {"criterion": "dsfd_pl"})


def test_a_model_whose_entry_names_no_criterion_is_a_config_error(monkeypatch):
    from facescope.models import registry

    entry = registry.get_model_entry("retinaface_mnet025")
    monkeypatch.setitem(registry._MODELS._items, entry.name, dataclasses.replace(entry, criterion=None))
    with pytest.raises(ConfigError, match="retinaface_mnet025 has no training criterion"):
        build_criterion(create_model("retinaface_mnet025"))


def test_box_and_classification_loss_names_are_checked_with_the_list_of_valid_names():
    with pytest.raises(ConfigError, match=r"'box_loss' must be one of \['smooth_l1', 'diou', 'giou'\], got 'ciou'"):
        apply_loss_overrides(PORT_LOSS, {"box_loss": "ciou"})
    valid = r"\['softmax_ce', 'sigmoid_ce', 'focal', 'large_margin_cosine'\]"
    with pytest.raises(ConfigError, match=rf"'cls_loss' must be one of {valid}, got 'arcface'"):
        apply_loss_overrides(PORT_LOSS, {"cls_loss": "arcface"})


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


# ---------------------------------------------------------------- box and classification losses by name
# One face F = [2, 2, 12, 12] and two side-10 priors: A0 = [0, 0, 10, 10] (centre 5, 5) and A1 = [40, 40, 50, 50].
# IoU(A0, F) = 8 * 8 / (100 + 100 - 64) = 64 / 136 = 0.470588 >= 0.4: A0 is DSFD's positive, A1 its negative
# (IoU 0), and with OHEM 3:1 the one negative is kept. Zero regressions decode to the prior itself.
HAND_PRIORS = [[5.0, 5.0], [45.0, 45.0]]
HAND_FACE = [[2.0, 2.0, 12.0, 12.0]]


def _hand_criterion(**settings) -> MultiBoxCriterion:
    return MultiBoxCriterion(FixedPriors(HAND_PRIORS), DeltaCoder((0.1, 0.2)), dataclasses.replace(DSFD_LOSS, **settings))


def _hand_outputs(logits: list[list[float]]) -> DenseOutputs:
    return DenseOutputs([torch.tensor([logits])], [torch.zeros(1, 2, 4)])


def test_diou_box_loss_through_the_multibox_criterion_by_hand():
    result = _hand_criterion(box_loss="diou")(_hand_outputs([[0.0, 0.0], [0.0, 0.0]]), [_faces(HAND_FACE)], (64, 64))
    # DIoU(A0, F) = 1 - IoU + rho^2 / c^2: centres (5, 5) and (7, 7) give rho^2 = 8; the enclosing box [0, 0, 12, 12]
    # has diagonal c^2 = 144 + 144 = 288; 1 - 64/136 + 8/288 = 0.529412 + 0.027778 = 0.557190; one positive.
    assert result.losses["box"].item() == pytest.approx(1 - 64 / 136 + 8 / 288, rel=1e-5)
    assert result.losses["box"].item() == pytest.approx(0.557190, abs=1e-6)
    # The same positive under smooth-L1 on the deltas is another number entirely.
    smooth = _hand_criterion()(_hand_outputs([[0.0, 0.0], [0.0, 0.0]]), [_faces(HAND_FACE)], (64, 64))
    assert smooth.losses["box"].item() != pytest.approx(result.losses["box"].item(), rel=1e-2)


def test_giou_box_loss_through_the_multibox_criterion_by_hand():
    result = _hand_criterion(box_loss="giou", box_weight=2.0)(_hand_outputs([[0.0, 0.0], [0.0, 0.0]]), [_faces(HAND_FACE)], (64, 64))
    # GIoU loss = 1 - IoU + (C - U) / C: union U = 136, enclosing area C = 12 * 12 = 144;
    # 1 - 0.470588 + 8 / 144 = 0.584967, times box_weight 2.
    assert result.losses["box"].item() == pytest.approx(2 * (1 - 64 / 136 + 8 / 144), rel=1e-5)
    assert result.losses["box"].item() == pytest.approx(1.169935, abs=1e-5)


def test_large_margin_cosine_classification_through_the_multibox_criterion_by_hand():
    criterion = _hand_criterion(cls_loss="large_margin_cosine", margin_scale=4.0, margin=0.25)
    # Cosines (background, face): A0 (positive) (0.1, 0.5), A1 (negative) (0.3, -0.2); s = 4, m = 0.25 off the
    # true class's cosine. A0: logits 4 * (0.1, 0.5 - 0.25) = (0.4, 1.0), CE = log(1 + e^(0.4 - 1.0)) = 0.437488.
    # A1: logits 4 * (0.3 - 0.25, -0.2) = (0.2, -0.8), CE = log(1 + e^(-0.8 - 0.2)) = 0.313262.
    # Sum over the positive and the kept negative, / 1 positive = 0.750750.
    result = criterion(_hand_outputs([[0.1, 0.5], [0.3, -0.2]]), [_faces(HAND_FACE)], (64, 64))
    assert result.losses["cls"].item() == pytest.approx(math.log1p(math.exp(-0.6)) + math.log1p(math.exp(-1.0)), rel=1e-6)
    assert result.losses["cls"].item() == pytest.approx(0.750750, abs=1e-6)
    # The positive's score is softmax(s * cos) without the margin: sigmoid(4 * 0.4) = 0.832018.
    assert result.per_image["min_positive_score"].item() == pytest.approx(1 / (1 + math.exp(-1.6)), rel=1e-6)


def test_focal_classification_through_the_multibox_criterion_by_hand():
    criterion = _hand_criterion(cls_loss="focal", focal_alpha=0.25, focal_gamma=2.0)
    # A0 (face) logits (0, ln 3): p = 3/4, loss = 0.25 * (1/4)^2 * -ln(3/4) = 0.0044950;
    # A1 (background) logits (0, 0): p_t = 1/2, loss = 0.75 * (1/2)^2 * ln 2 = 0.1299650. Sum / 1 positive.
    result = criterion(_hand_outputs([[0.0, math.log(3.0)], [0.0, 0.0]]), [_faces(HAND_FACE)], (64, 64))
    assert result.losses["cls"].item() == pytest.approx(0.25 / 16 * -math.log(0.75) + 0.75 / 4 * math.log(2.0), rel=1e-6)
    assert result.losses["cls"].item() == pytest.approx(0.134460, abs=1e-6)


def test_a_classification_loss_must_score_as_the_model_declares():
    model = create_model("retinaface_mnet025")  # its entry: softmax at logit scale 1
    with pytest.raises(ConfigError, match=r"'large_margin_cosine' trains softmax scores of logits x 30, but retinaface_mnet025 scores softmax\(logits x 1\)"):
        build_criterion(model, {"cls_loss": "large_margin_cosine"})
    with pytest.raises(ConfigError, match="'sigmoid_ce' trains sigmoid scores"):
        build_criterion(model, {"cls_loss": "sigmoid_ce"})
    assert build_criterion(model, {"cls_loss": "focal"}).config.cls_loss == "focal"  # focal scores as the head does
    # A head declared with logit scale 30 (a margin-trained head, as ASFD's) trains with the margin loss at s = 30 and
    # reports, at inference, exactly the scores that loss trains.
    model.logit_scale = 30.0
    criterion = build_criterion(model, {"cls_loss": "large_margin_cosine", "margin": 0.2})
    cosines = torch.tensor([[[0.1, 0.3], [0.2, -0.4]]])
    assert torch.equal(model.scores_from_logits(cosines), criterion.cls_loss.scores(cosines))
    assert model.scores_from_logits(cosines)[0, 0].item() == pytest.approx(1 / (1 + math.exp(-30 * 0.2)), rel=1e-6)
    with pytest.raises(ConfigError, match="softmax_ce"):
        build_criterion(model)  # the port's softmax_ce no longer scores as this head does
