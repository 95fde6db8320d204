from facescope.engine.samplers import ShardedSampler


def batches(sampler: ShardedSampler) -> list[list[int]]:
    order = list(sampler)
    return [order[i : i + sampler.batch_size] for i in range(0, len(order), sampler.batch_size)]


def test_ranks_split_the_global_batches_of_one_process():
    single = ShardedSampler(10, batch_size=4, seed=3)
    ranks = [ShardedSampler(10, batch_size=2, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in [single, *ranks]:
        s.set_epoch(1)
    global_batches = batches(single)  # 10 samples padded to 12 -> 3 global batches of 4
    assert len(global_batches) == 3 and len(set(sum(global_batches, []))) == 10
    per_rank = [batches(s) for s in ranks]
    for b in range(3):
        assert per_rank[0][b] + per_rank[1][b] == global_batches[b]


def test_epochs_differ_and_resume_skips_done_batches():
    sampler = ShardedSampler(12, batch_size=3, seed=0)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.set_epoch(0, start_batch=2)
    assert list(sampler) == epoch0[6:] and len(sampler) == 6


# --------------------------------------------------------------------------------------------------
# The sampler protocol: registry, state in checkpoints, exact resume with a sampler that learns.

import pytest  # noqa: E402
import torch  # noqa: E402

from facescope.engine.samplers import (  # noqa: E402
    TrainSampler,
    build_sampler,
    pad_to_global_batches,
    register_sampler,
)
from facescope.errors import ConfigError  # noqa: E402


class MostFacesFirstSampler(ShardedSampler):
    """Toy stateful sampler: each epoch trains the images with the most faces seen so far first.

    The epoch's order is fixed at ``set_epoch`` from the statistics gathered until then and kept in
    the state, so a restart mid-epoch yields the same order (the protocol's contract).
    """

    def __init__(self, num_samples, batch_size, *, seed=0, rank=0, world_size=1):
        super().__init__(num_samples, batch_size, seed, rank, world_size)
        self.faces_seen = torch.zeros(num_samples, dtype=torch.float64)
        self.history: list[int] = []
        self.order: list[int] = []
        self.order_epoch = -1

    def set_epoch(self, epoch, start_batch=0):
        super().set_epoch(epoch, start_batch)
        if self.order_epoch != epoch:
            n = self.num_samples
            self.order = sorted(range(n), key=lambda i: (-float(self.faces_seen[i]), (5 * i + epoch) % n))
            self.order_epoch = epoch

    def global_order(self):
        return pad_to_global_batches(self.order, self.batch_size * self.world_size)

    def update(self, indices, per_image_stats):
        self.faces_seen.index_add_(0, indices, per_image_stats["faces"].double())
        self.history += indices.tolist()

    def state_dict(self):
        return {"faces_seen": self.faces_seen.clone(), "history": list(self.history), "order": list(self.order),
                "order_epoch": self.order_epoch}

    def load_state_dict(self, state):
        self.faces_seen = state["faces_seen"].clone()
        self.history, self.order, self.order_epoch = list(state["history"]), list(state["order"]), state["order_epoch"]


register_sampler("test_most_faces_first", summary="toy sampler of the tests")(MostFacesFirstSampler)


class WithFaceCounts:
    """Wraps a criterion: adds the per-image statistic ``faces`` (faces left after augmentation)."""

    def __init__(self, criterion):
        self.criterion = criterion

    def __call__(self, outputs, targets, input_hw):
        result = self.criterion(outputs, targets, input_hw)
        result.per_image["faces"] = torch.tensor([float(len(t.boxes)) for t in targets])
        return result


def _train(config, resume=None):
    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, restore, run

    trainer = build_trainer(config, DistInfo(), torch.device("cpu"), False)
    trainer.criterion = WithFaceCounts(trainer.criterion)
    if resume is not None:
        restore(trainer, resume)
    run(trainer, progress=False)
    return trainer


def test_a_learning_sampler_survives_stop_and_resume_exactly(tiny_dataset, tmp_path):
    from engine_testing import tiny_config

    from facescope.engine.checkpoint import load_checkpoint

    def config(out, max_iters):
        c = tiny_config(tiny_dataset, out, max_iters=max_iters)
        c.data.sampler = "test_most_faces_first"
        return c

    # 6 images, batch 4 -> 2 steps per epoch. Stop after 3 steps (mid epoch 1, whose order came from
    # the statistics of epoch 0), resume to 4 and compare with 4 uninterrupted steps.
    straight = _train(config(tmp_path / "a", 4))
    _train(config(tmp_path / "b", 3))
    assert load_checkpoint(tmp_path / "b" / "last.pth")["sampler"]["order_epoch"] == 1
    resumed = _train(config(tmp_path / "b", 4), resume=tmp_path / "b" / "last.pth")
    assert resumed.sampler.history == straight.sampler.history and len(straight.sampler.history) == 16
    assert torch.equal(resumed.sampler.faces_seen, straight.sampler.faces_seen) and straight.sampler.faces_seen.sum() > 0
    epoch0, epoch1 = straight.sampler.history[:8], straight.sampler.history[8:]
    assert epoch1 != epoch0  # the update changed the order
    a, b = load_checkpoint(tmp_path / "a" / "last.pth")["model"], load_checkpoint(tmp_path / "b" / "last.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_registry_builds_by_name_and_rejects_unknown_names_and_options():
    sampler = build_sampler("sharded", {}, num_samples=10, batch_size=4, seed=3)
    assert isinstance(sampler, TrainSampler) and sampler.batches_per_epoch() == 3
    with pytest.raises(ConfigError, match=r"unknown sampler 'shardd' \(did you mean 'sharded'\?\)"):
        build_sampler("shardd", {}, 10, 4)
    with pytest.raises(ConfigError, match=r"sampler 'sharded' takes no options, got \['ratio'\]"):
        build_sampler("sharded", {"ratio": 0.5}, 10, 4)
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("sharded", summary="again")(MostFacesFirstSampler)


def test_sharded_state_refuses_a_different_dataset():
    state = ShardedSampler(10, 4).state_dict()
    ShardedSampler(10, 2).load_state_dict(state)
    with pytest.raises(ConfigError, match="trained on 10 images, the recipe's data has 12"):
        ShardedSampler(12, 4).load_state_dict(state)
