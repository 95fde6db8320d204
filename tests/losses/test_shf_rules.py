"""SHF anchor-level OHEM, losses and the easy-image statistic, on constructed score maps."""

import math

import pytest
import torch

from facescope.assign.shf_labels import IGNORE, NEGATIVE, POSITIVE
from facescope.assign.labels import Assignment
from facescope.losses.shf import SHFOHEMConfig, ohem_sample, shf_box_loss, shf_classification_loss
from facescope.losses.targets import min_positive_score
from facescope.models.shf import shf_anchor_generator
from facescope.ops.coders import DeltaCoder
from oracles.shf_image_loss import shf_image_loss


def score_map(num_pos: int, num_neg: int, num_ignored: int, pos_step: int, neg_step: int):
    """A 1-D score map: positives first, then negatives, then ignored anchors.

    Positive ``i`` scores ``(i * pos_step % num_pos) / num_pos`` (a permutation of distinct values),
    negative ``j`` scores ``(j * neg_step % num_neg) / num_neg``; the steps are coprime with the counts.
    """
    labels = torch.tensor([POSITIVE] * num_pos + [NEGATIVE] * num_neg + [IGNORE] * num_ignored)
    pos_rank = [(i * pos_step) % num_pos for i in range(num_pos)]
    neg_rank = [(j * neg_step) % num_neg for j in range(num_neg)]
    scores = torch.tensor([r / num_pos for r in pos_rank] + [r / num_neg for r in neg_rank] + [0.5] * num_ignored)
    return labels, scores, pos_rank, neg_rank


def test_ohem_keeps_exactly_the_hardest_64_positives_and_192_negatives():
    labels, scores, pos_rank, neg_rank = score_map(100, 800, 100, pos_step=37, neg_step=53)
    sampled = ohem_sample(labels, scores)
    kept_pos = {i for i in range(100) if sampled[i] == POSITIVE}
    kept_neg = {j for j in range(800) if sampled[100 + j] == NEGATIVE}
    assert kept_pos == {i for i in range(100) if pos_rank[i] < 64}  # the 64 least face-like positives
    assert kept_neg == {j for j in range(800) if neg_rank[j] >= 800 - 192}  # the 192 most face-like negatives
    assert int((sampled == POSITIVE).sum()) == 64 and int((sampled == NEGATIVE).sum()) == 192
    assert bool((sampled[900:] == IGNORE).all())  # ignored anchors stay ignored
    assert torch.equal(labels[:1], torch.tensor([POSITIVE]))  # the input is not modified


def test_ohem_fills_the_256_with_negatives_when_positives_are_few():
    labels, scores, _, neg_rank = score_map(10, 500, 0, pos_step=3, neg_step=7)
    sampled = ohem_sample(labels, scores)
    assert int((sampled[:10] == POSITIVE).sum()) == 10
    kept_neg = {j for j in range(500) if sampled[10 + j] == NEGATIVE}
    assert kept_neg == {j for j in range(500) if neg_rank[j] >= 500 - 246}


def test_ohem_keeps_everything_below_the_quota_and_breaks_ties_by_index():
    labels = torch.tensor([POSITIVE, NEGATIVE, NEGATIVE, IGNORE])
    assert torch.equal(ohem_sample(labels, torch.tensor([0.1, 0.9, 0.2, 0.5])), labels)
    tied = torch.tensor([NEGATIVE] * 6)
    sampled = ohem_sample(tied, torch.full((6,), 0.3), SHFOHEMConfig(anchors_per_image=4, max_positives=2))
    assert sampled.tolist() == [NEGATIVE] * 4 + [IGNORE] * 2
    with pytest.raises(ValueError, match="max_positives <= anchors_per_image"):
        SHFOHEMConfig(anchors_per_image=10, max_positives=11)


def test_ohem_on_a_2d_score_map_uses_face_probability_order():
    # 16x16 map, face probability rising with the position; positions 0..69 are positive. 70 > 64, so
    # the 64 least face-like positives, positions 0..63, are kept.
    face_probs = torch.linspace(0.01, 0.99, 256).reshape(16, 16)
    labels = torch.full((16, 16), NEGATIVE)
    labels.view(-1)[:70] = POSITIVE
    sampled = ohem_sample(labels.flatten(), face_probs.flatten())
    assert sampled[:64].eq(POSITIVE).all() and sampled[64:70].eq(IGNORE).all()
    # The quota is 256 - 64 = 192 negatives; there are only 186 (positions 70..255): all kept.
    assert sampled[70:].eq(NEGATIVE).all()


def test_min_positive_score_per_image_of_a_batch():
    # image 0: positives at 0.9 and 0.86 -> 0.86; image 1: no positive anchor -> 1.0 (easy for the release)
    labels = torch.tensor([[POSITIVE, NEGATIVE, POSITIVE, IGNORE], [NEGATIVE, IGNORE, NEGATIVE, NEGATIVE]])
    probs = torch.tensor([[0.9, 0.1, 0.86, 0.2], [0.3, 0.4, 0.99, 0.0]])
    assignment = Assignment(labels, torch.zeros_like(labels), torch.zeros(labels.shape))
    assert min_positive_score(probs, assignment).tolist() == pytest.approx([0.86, 1.0])


def test_classification_loss_averages_over_sampled_anchors():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = shf_classification_loss(logits, torch.tensor([POSITIVE, NEGATIVE, IGNORE]))
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert loss.item() == pytest.approx(expected)
    none = shf_classification_loss(logits, torch.tensor([IGNORE] * 3))
    assert none.item() == 0.0 and none.requires_grad


def test_box_loss_is_caffe_smooth_l1_with_sigma_3():
    # beta = 1/9: 0.05 -> 0.5 * 9 * 0.05^2 = 0.01125; 0.5 -> 0.5 - 1/18; -1 -> 1 - 1/18.
    pred = torch.zeros(2, 4)
    target = torch.tensor([[0.05, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    expected = (0.01125 + (0.5 - 1 / 18) + (1 - 1 / 18)) / 2
    assert shf_box_loss(pred, target).item() == pytest.approx(expected)
    assert shf_box_loss(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


def test_image_loss_on_a_constructed_image():
    hw = (64, 64)
    priors = shf_anchor_generator().priors(hw)
    n = len(priors)
    cls_logits = torch.zeros(n, 2, requires_grad=True)  # every anchor at face probability 0.5
    box_regs = torch.zeros(n, 4, requires_grad=True)
    result = shf_image_loss(
        cls_logits, box_regs, priors, DeltaCoder((1.0, 1.0)), torch.tensor([[16.0, 16.0, 32.0, 32.0]]), hw
    )
    # 1 positive + all 70 inside negatives (75 inside anchors - 4 ignored neighbours), each CE = ln 2.
    assert int((result.sampled_labels == POSITIVE).sum()) == 1
    assert int((result.sampled_labels == NEGATIVE).sum()) == 70
    assert result.cls.item() == pytest.approx(math.log(2))
    # 5 regression anchors: the exact one (deltas 0) and 4 neighbours with one delta of +-0.5 each:
    # 4 x (0.5 - 1/18) / 5 = 16/45.
    assert int(result.regression.sum()) == 5
    assert result.box.item() == pytest.approx(16 / 45)
    assert result.min_positive_score.item() == pytest.approx(0.5) and result.num_positive_anchors == 1
    (result.cls + result.box).backward()
    assert cls_logits.grad.abs().sum() > 0 and box_regs.grad.abs().sum() > 0


def test_image_loss_without_faces_trains_background_only():
    hw = (64, 64)
    priors = shf_anchor_generator().priors(hw)
    logits = torch.zeros(len(priors), 2)
    logits[:, 0] = 2.0  # background-leaning: CE = log(1 + e^-2) for every negative
    result = shf_image_loss(logits, torch.zeros(len(priors), 4), priors, DeltaCoder((1.0, 1.0)), torch.zeros(0, 4), hw)
    assert int((result.sampled_labels == NEGATIVE).sum()) == 75  # every inside anchor, fewer than 256
    assert result.cls.item() == pytest.approx(math.log(1 + math.exp(-2)))
    assert result.box.item() == 0.0 and int(result.regression.sum()) == 0
    assert result.min_positive_score.item() == 1.0 and result.num_positive_anchors == 0  # easy for the release
