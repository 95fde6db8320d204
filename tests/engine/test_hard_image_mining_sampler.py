"""The hard_image_mining sampler: seeded skip probability, order fixed per epoch, exact resume in training."""

import numpy as np
import pytest
import torch

from facescope.engine.hard_image_miner import HardImageMiningConfig
from facescope.engine.samplers import HardImageMiningSampler, TrainSampler, build_sampler
from facescope.errors import ConfigError
from facescope.losses.criteria import MIN_POSITIVE_SCORE, NUM_POSITIVE


def mark(sampler, indices, score):
    n = len(indices)
    sampler.update(torch.tensor(indices), {MIN_POSITIVE_SCORE: torch.full((n,), score), NUM_POSITIVE: torch.ones(n)})


def test_registered_with_typed_options():
    sampler = build_sampler("hard_image_mining", {"rule": "wpas", "skip_prob": 0.5}, num_samples=10, batch_size=4, seed=1)
    assert isinstance(sampler, TrainSampler) and sampler.miner.config == HardImageMiningConfig("wpas", 0.85, 0.5)
    assert build_sampler("hard_image_mining", {}, 10, 4).miner.config == HardImageMiningConfig()  # released defaults
    with pytest.raises(ConfigError, match="skip_probability"):
        build_sampler("hard_image_mining", {"skip_probability": 0.5}, 10, 4)


def test_first_epoch_trains_every_image_then_easy_ones_are_skipped_with_the_seeded_draws():
    sampler = HardImageMiningSampler(2000, batch_size=10, seed=3)
    sampler.set_epoch(0)
    assert sorted(sampler.order) == list(range(2000))  # nothing is easy before the first update
    mark(sampler, list(range(0, 2000, 2)), 0.85)  # even images: every positive >= 0.85 -> easy
    mark(sampler, list(range(1, 2000, 2)), 0.8499)  # odd images: hard
    sampler.set_epoch(1)
    full = torch.randperm(2000, generator=torch.Generator().manual_seed(3 + 1)).tolist()  # the sharded order
    draws = np.random.default_rng((3, 1))
    expected = [i for i in full if i % 2 or not draws.random() < 0.7]  # one draw per easy image, in order
    assert sampler.order == expected
    skipped = 2000 - len(expected)
    assert sampler.epoch_log[-1] == {"epoch": 1, "easy": 1000, "skipped": skipped, "trained": len(expected)}
    assert abs(skipped - 700) < 60  # 0.7 of the 1000 easy images (binomial sd 14.5)
    assert all(i in sampler.order for i in range(1, 2000, 2))  # hard images are never skipped


def test_one_marked_image_is_skipped_in_seventy_percent_of_the_epochs():
    sampler = HardImageMiningSampler(5, batch_size=5, seed=0)
    mark(sampler, [2], 0.9)
    skipped = []
    for epoch in range(1, 2001):
        sampler.set_epoch(epoch)
        skipped.append(2 not in sampler.order)
        assert len(sampler.order) == 5 - skipped[-1]
    expected = [np.random.default_rng((0, e)).random() < 0.7 for e in range(1, 2001)]
    assert skipped == expected and abs(sum(skipped) / 2000 - 0.7) < 0.035


def test_order_is_fixed_when_the_epoch_starts_and_the_state_round_trips():
    sampler = HardImageMiningSampler(12, batch_size=4, seed=0)
    sampler.set_epoch(0)
    mark(sampler, list(range(6)), 0.99)
    sampler.set_epoch(1)
    order = list(sampler)
    mark(sampler, list(range(6, 12)), 0.99)  # an update mid-epoch changes later epochs only
    sampler.set_epoch(1, start_batch=1)
    assert list(sampler) == order[4:]
    state = sampler.state_dict()
    restored = HardImageMiningSampler(12, batch_size=4, seed=0)
    restored.load_state_dict(torch.load(_saved(state), weights_only=True))
    assert restored.state_dict() == state
    restored.set_epoch(1, start_batch=1)
    assert list(restored) == order[4:]


def _saved(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def _train(config, resume=None):
    from engine_testing import train_run

    return train_run(config, resume)


@pytest.mark.slow  # three short SHF training runs: ~25 s on one free core
def test_mining_state_survives_stop_and_resume_bit_exactly(tiny_dataset, tmp_path):
    from engine_testing import tiny_config

    from facescope.engine.checkpoint import load_checkpoint

    def config(out, max_iters):
        c = tiny_config(tiny_dataset, out, max_iters=max_iters)
        c.model = "shf_mnet025"
        c.data.pipeline, c.data.image_size, c.data.batch_size = "shf", 96, 2  # short sides 32 / 64 / 96
        c.data.sampler = "hard_image_mining"
        c.data.sampler_options = {"threshold": 0.0}  # every trained image is easy: the skips are exercised
        c.optim.epochs, c.optim.milestones = 20, (10,)
        return c

    # 6 images, batch 2: 3 steps in epoch 0, fewer later. Stop mid-run, resume, compare with a straight run.
    straight = _train(config(tmp_path / "a", 6))
    _train(config(tmp_path / "b", 4))
    resumed = _train(config(tmp_path / "b", 6), resume=tmp_path / "b" / "last.pth")
    a, b = load_checkpoint(tmp_path / "a" / "last.pth"), load_checkpoint(tmp_path / "b" / "last.pth")
    assert a["sampler"] == b["sampler"] and resumed.sampler.state_dict() == straight.sampler.state_dict()
    log = a["sampler"]["epoch_log"]
    assert log[0] == {"epoch": 0, "easy": 0, "skipped": 0, "trained": 6} and log[1]["easy"] == 6
    assert sum(e["skipped"] for e in log) > 0
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
