"""SHF hard image mining: marking rules, seeded skipping, and exact state round trips."""

import io
import json
import math

import numpy as np
import pytest
import torch

from facescope.engine.hard_image_miner import HardImageMiner, HardImageMiningConfig
from facescope.losses.criteria import NUM_POSITIVE


def stats(scores, counts=None):
    out = {"min_positive_score": torch.tensor(scores, dtype=torch.float64)}  # exact 0.85 at the boundary
    if counts is not None:
        out[NUM_POSITIVE] = torch.tensor(counts)
    return out


def test_released_rule_marks_at_threshold_sticky_and_counts_no_positives_as_easy():
    miner = HardImageMiner(5)
    assert miner.num_easy == 0  # first epoch: everything is hard
    # 0.85 itself is easy (>=), 0.849 hard.
    miner.update([0, 1, 2], stats([0.85, 0.849, 1.0]))  # 1.0 = no positive anchor (all([]) is True)
    assert miner.easy_indices() == [0, 2]
    miner.update(torch.tensor([0, 3]), stats([0.1, 0.99]))  # a later hard pass does not clear a mark
    assert miner.easy_indices() == [0, 2, 3] and miner.is_easy(0) and not miner.is_easy(1)


def test_wpas_rule_is_strict_re_evaluated_and_skips_images_without_positives():
    miner = HardImageMiner(4, HardImageMiningConfig(rule="wpas"))
    miner.update([0, 1, 2], stats([0.85, 0.86, 1.0], counts=[3, 2, 0]))
    assert miner.easy_indices() == [1]  # 0.85 is not > 0.85; image 2 has no WPAS
    miner.update([1, 2], stats([0.4, 0.2], counts=[5, 0]))
    assert miner.easy_indices() == []  # image 1 is hard again; image 2 unchanged
    with pytest.raises(KeyError, match=NUM_POSITIVE):
        miner.update([0], stats([0.9]))


def test_hard_images_are_never_skipped_and_consume_no_draw():
    miner = HardImageMiner(3)
    miner.update([2], stats([0.95]))
    rng, fresh = np.random.default_rng(7), np.random.default_rng(7)
    assert not miner.should_skip(0, rng) and not miner.should_skip(1, rng)
    assert rng.random() == fresh.random()  # no draw was taken for the hard images


def test_easy_image_skipped_with_the_configured_probability():
    miner = HardImageMiner(2)
    miner.update([1], stats([0.9]))
    rng = np.random.default_rng(2024)
    skips = sum(miner.should_skip(1, rng) for _ in range(10_000))
    # Binomial(10000, 0.7): mean 7000, sd sqrt(2100) = 45.8; 5 sd = 229.
    assert abs(skips - 7000) < 5 * math.sqrt(10_000 * 0.7 * 0.3)
    lenient = HardImageMiner(2, HardImageMiningConfig(skip_prob=0.2))
    lenient.update([1], stats([0.9]))
    skips = sum(lenient.should_skip(1, rng) for _ in range(10_000))
    assert abs(skips - 2000) < 5 * math.sqrt(10_000 * 0.2 * 0.8)


def test_exact_skip_sequence_for_a_fixed_seed():
    miner = HardImageMiner(1)
    miner.update([0], stats([0.9]))
    rng = np.random.default_rng(0)
    # default_rng(0).random(): 0.637, 0.270, 0.041, 0.017, 0.813, 0.913, 0.607, 0.729, 0.544, 0.935 -> < 0.7?
    expected = [True, True, True, True, False, False, True, False, True, False]
    assert [miner.should_skip(0, rng) for _ in range(10)] == expected


def test_filter_epoch_draws_in_order_for_easy_images_only():
    miner = HardImageMiner(6)
    miner.update([1, 3, 4], stats([0.9, 0.9, 0.9]))
    # Easy images in order 4, 1, 3 take the draws 0.637 (skip), 0.270 (skip), 0.041 (skip).
    assert miner.filter_epoch([5, 4, 0, 1, 2, 3], np.random.default_rng(0)) == [5, 0, 2]
    # Four draws later the stream continues 0.813 (keep 4), 0.913 (keep 1), 0.607 (skip 3).
    rng = np.random.default_rng(0)
    for _ in range(4):
        rng.random()
    assert miner.filter_epoch([4, 1, 3], rng) == [4, 1]


def test_state_round_trips_bit_exactly_through_a_checkpoint():
    miner = HardImageMiner(1000, HardImageMiningConfig(rule="released", threshold=0.85, skip_prob=0.7))
    rng = np.random.default_rng(3)
    indices = rng.permutation(1000)[:400]
    miner.update(indices.tolist(), stats(rng.random(400).tolist()))
    state = miner.state_dict()
    buffer = io.BytesIO()
    torch.save({"sampler": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["sampler"]
    resumed = HardImageMiner(1000, HardImageMiningConfig())
    resumed.load_state_dict(loaded)
    assert resumed.state_dict() == state
    assert json.loads(json.dumps(state)) == state  # plain values only
    order = np.random.default_rng(11).permutation(1000).tolist()
    assert resumed.filter_epoch(order, np.random.default_rng(5)) == miner.filter_epoch(order, np.random.default_rng(5))


def test_state_from_other_settings_or_dataset_is_rejected_and_bad_stats_too():
    miner = HardImageMiner(10)
    state = miner.state_dict()
    with pytest.raises(ValueError, match="settings"):
        HardImageMiner(10, HardImageMiningConfig(skip_prob=0.5)).load_state_dict(state)
    with pytest.raises(ValueError, match="for 10 images, this dataset has 11"):
        HardImageMiner(11).load_state_dict(state)
    with pytest.raises(IndexError, match="image index 10"):
        miner.update([10], stats([0.9]))
    with pytest.raises(ValueError, match="NaN"):
        miner.update([1], stats([float("nan")]))
    with pytest.raises(ValueError, match="2 values for 1 images"):
        miner.update([1], stats([0.9, 0.9]))
    with pytest.raises(ValueError, match="rule must be"):
        HardImageMiningConfig(rule="paper")


def test_wpas_rule_reads_the_statistics_a_real_criterion_reports() -> None:
    """The miner's keys are the criteria's (a mismatch once made the 'wpas' rule fail with KeyError)."""
    from facescope.losses.criteria import build_criterion
    from facescope.models import create_model
    from facescope.structures import FaceTargets

    model = create_model("retinaface_mnet025").train()
    face = FaceTargets.from_boxes(torch.tensor([[16.0, 16.0, 48.0, 48.0]]))
    result = build_criterion(model)(model(torch.randn(2, 3, 64, 64)), [face, FaceTargets.from_boxes(torch.zeros(0, 4))], (64, 64))
    miner = HardImageMiner(2, HardImageMiningConfig(rule="wpas"))
    miner.update([0, 1], result.per_image)  # raised KeyError('num_positive_anchors') before the keys were shared
    assert int(result.per_image["num_positive"][0]) > 0 and int(result.per_image["num_positive"][1]) == 0
