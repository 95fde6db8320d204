"""Step strategies: the bilevel step computed by hand on a two-parameter model, its data halves, its
parameter sets through the real trainer, and an exact resume in the middle of a bilevel epoch."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from facescope.config import from_dict
from facescope.engine.config import OptimConfig, TrainConfig
from facescope.engine.optimizers import build_optimizers
from facescope.engine.param_groups import ParamRule
from facescope.engine.steps import BilevelStep, StepData, build_step_strategy, list_step_strategies, split_halves
from facescope.errors import ConfigError


class TwoScalars(nn.Module):
    """f(x) = w x + a: ``w`` the network weight, ``a`` the architecture weight."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))
        self.a = nn.Parameter(torch.tensor(0.0))


def batches_of(sampler, batch_size=1):
    """A loader stand-in: the sampler's indices in lists of ``batch_size``."""

    class Loader:
        def __iter__(self):
            indices = list(sampler)
            return iter([indices[i : i + batch_size] for i in range(0, len(indices), batch_size)])

    return Loader()


def toy_data(num_samples=4, seed=0):
    return StepData(num_samples, 1, seed, 0, 1, "sharded", {}, batches_of)


def test_the_registry_lists_both_strategies():
    assert list_step_strategies() == ["bilevel", "standard"]


def test_the_halves_are_disjoint_seeded_and_cover_the_data():
    halves = split_halves(7, 0.5, seed=3)
    assert sorted(halves["network"] + halves["architecture"]) == list(range(7))
    assert len(halves["architecture"]) == 4 and halves == split_halves(7, 0.5, seed=3) != split_halves(7, 0.5, seed=4)
    assert [len(h) for h in split_halves(5, 0.01, 0).values()] == [4, 1]  # at least one image each
    with pytest.raises(ConfigError, match="needs at least 2 training images"):
        split_halves(1, 0.5, 0)


def test_each_half_step_moves_its_own_parameter_set_by_hand_computed_amounts():
    """Loss of sample i: (w x_i + a)^2 with x_i = i + 1; SGD lr 0.1 without momentum or decay.

    Architecture half step on sample j:  a' = a - 0.1 * 2 (w x_j + a)        = -0.2 x_j    (w stays 1)
    Network half step on sample k:       w' = w - 0.1 * 2 (w x_k + a') x_k   = 1 - 0.2 (x_k - 0.2 x_j) x_k   (a stays a')
    """
    model = TwoScalars()
    config = OptimConfig(lr=0.1, momentum=0.0, weight_decay=0.0, param_groups=[ParamRule("a", parameter_set="architecture")])
    optimizers = build_optimizers(model, config)
    optimizers.set_learning_rates(0.1)
    strategy = build_step_strategy("bilevel", {}, toy_data(), optimizers)
    seen, values = [], []

    def half_step(batch, parameter_set, sampler):
        x = torch.tensor([float(i + 1) for i in batch])
        loss = ((model.w * x + model.a) ** 2).mean()
        optimizers.zero_grad()
        loss.backward()
        for part in optimizers.of(parameter_set):
            part.optimizer.step()
        seen.append((parameter_set, list(batch)))
        values.append((model.w.item(), model.a.item()))
        return {"loss": float(loss.detach())}

    strategy.set_epoch(0)
    assert strategy.batches_per_epoch() == 2
    for batches in strategy.batches():
        w, a = model.w.item(), model.a.item()
        metrics = strategy.step(batches, half_step)
        (first, (j,)), (second, (k,)) = seen[-2:]
        assert (first, second) == ("architecture", "network") and set(metrics) == {"loss", "architecture_loss"}
        assert j in strategy.halves["architecture"] and k in strategy.halves["network"]
        a_after = a - 0.2 * (w * (j + 1) + a)
        assert values[-2] == pytest.approx((w, a_after), abs=1e-6)  # the architecture step leaves w alone
        w_after = w - 0.2 * (w * (k + 1) + a_after) * (k + 1)
        assert values[-1] == pytest.approx((w_after, a_after), abs=1e-6)  # the network step leaves a alone
    # one epoch: every image of each half once, never an image of the other half
    assert sorted(b[0] for s, b in seen if s == "architecture") == strategy.halves["architecture"]
    assert sorted(b[0] for s, b in seen if s == "network") == strategy.halves["network"]


def test_bilevel_needs_an_architecture_set_and_fitting_options():
    optimizers = build_optimizers(TwoScalars(), OptimConfig())
    with pytest.raises(ConfigError, match="needs architecture parameters to train: give optim.param_groups a rule with parameter_set: architecture"):
        build_step_strategy("bilevel", {}, toy_data(), optimizers)
    with pytest.raises(ConfigError, match=r"'optim.step_strategy' must be one of \['bilevel', 'standard'\] .*got 'bilevl' \(did you mean 'bilevel'\?\)"):
        from_dict(TrainConfig, {"model": "m", "optim": {"step_strategy": "bilevl"}})
    with pytest.raises(ConfigError, match=r"'optim.step_options' do not fit step strategy 'bilevel': .*'architecture_fraction' must be in \(0, 1\), got 1.5"):
        from_dict(TrainConfig, {"model": "m", "optim": {"step_strategy": "bilevel", "step_options": {"architecture_fraction": 1.5}}})
    with pytest.raises(ConfigError, match=r"'optim.step_options' do not fit step strategy 'standard': step strategy 'standard' takes no options"):
        from_dict(TrainConfig, {"model": "m", "optim": {"step_options": {"first": "network"}}})
    with pytest.raises(ConfigError, match=r"'optim.optimizer' must be one of \['sgd', 'adam', 'adamw'\], got 'lamb'"):
        from_dict(TrainConfig, {"model": "m", "optim": {"optimizer": "lamb"}})


def bilevel_config(root, out_dir, **runtime):
    from engine_testing import tiny_config

    config = tiny_config(root, out_dir, **runtime)
    config.data.batch_size = 1
    config.optim.step_strategy = "bilevel"
    config.optim.param_groups = [ParamRule("bbox_head.*", parameter_set="architecture", optimizer="adam", fixed_lr=1e-3)]
    return config


def test_through_the_trainer_each_half_step_moves_only_its_set_on_its_half(tiny_dataset, tmp_path):
    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, half_step

    trainer = build_trainer(bilevel_config(tiny_dataset, tmp_path), DistInfo(), torch.device("cpu"), False)
    assert isinstance(trainer.strategy, BilevelStep) and [p.name for p in trainer.optimizers.parts] == ["network.sgd", "architecture.adam"]
    trainer.strategy.set_epoch(0)
    trainer.optimizers.set_learning_rates(0.01)
    moved, indices = {}, {}

    def spy(batch, parameter_set, sampler):
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        metrics = half_step(trainer, 0.01, batch, parameter_set, sampler)
        moved[parameter_set] = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
        indices[parameter_set] = batch.indices.tolist()
        return metrics

    metrics = trainer.strategy.step(next(iter(trainer.strategy.batches())), spy)
    head = {n for n, _ in trainer.model.named_parameters() if n.startswith("bbox_head.")}
    assert moved["architecture"] and moved["architecture"] <= head
    assert moved["network"] and not moved["network"] & head
    assert indices["architecture"][0] in trainer.strategy.halves["architecture"]
    assert indices["network"][0] in trainer.strategy.halves["network"]
    assert {"loss", "architecture_loss", "grad_norm", "architecture_grad_norm"} <= set(metrics)


def _train(config, resume=None):
    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, restore, run

    trainer = build_trainer(config, DistInfo(), torch.device("cpu"), False)
    if resume is not None:
        restore(trainer, resume)
    run(trainer, progress=False)
    return trainer


def test_resume_in_the_middle_of_a_bilevel_epoch_is_exact(tiny_dataset, tmp_path):
    from facescope.engine.checkpoint import load_checkpoint

    # 6 images: halves of 3, batch 1 -> 3 iterations per epoch. Stop after 4 (mid epoch 1), resume to 5.
    _train(bilevel_config(tiny_dataset, tmp_path / "a", max_iters=5))
    _train(bilevel_config(tiny_dataset, tmp_path / "b", max_iters=4))
    stopped = load_checkpoint(tmp_path / "b" / "last.pth")
    assert (stopped["epoch"], stopped["batch_in_epoch"], stopped["step_strategy"]) == (1, 1, "bilevel")
    assert set(stopped["sampler"]["halves"]) == {"network", "architecture"} and stopped["sampler"]["split"] == {"network": 3, "architecture": 3}
    assert set(stopped["optimizer"]["parts"]) == {"network.sgd", "architecture.adam"}
    _train(bilevel_config(tiny_dataset, tmp_path / "b", max_iters=5), resume=tmp_path / "b" / "last.pth")
    a, b = load_checkpoint(tmp_path / "a" / "last.pth"), load_checkpoint(tmp_path / "b" / "last.pth")
    assert a["global_step"] == b["global_step"] == 5
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # bit for bit
    for name in ("network.sgd", "architecture.adam"):
        state_a, state_b = a["optimizer"]["parts"][name]["state"], b["optimizer"]["parts"][name]["state"]
        assert all(torch.equal(state_a[i][key], state_b[i][key]) for i in state_a for key in state_a[i])
    standard = tmp_path / "b" / "last.pth"
    with pytest.raises(Exception, match="was trained with optim.step_strategy 'bilevel', not 'standard'"):
        from engine_testing import tiny_config

        _train(tiny_config(tiny_dataset, tmp_path / "c", max_iters=6), resume=standard)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world_size, port, root, out_dir):
    from facescope.engine.trainer import fit

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    fit(_ddp_config(root, out_dir, 2 // world_size), progress=False)


def _ddp_config(root, out_dir, batch_size):
    config = bilevel_config(root, out_dir, max_iters=2, freeze_bn_stats=True)
    config.data.batch_size = batch_size
    config.optim.param_groups = [ParamRule("bbox_head.*", parameter_set="architecture", fixed_lr=1e-3)]  # SGD: no sign() of tiny gradients
    return config


@pytest.mark.slow
def test_bilevel_under_two_gloo_processes_matches_one_process(tiny_dataset, tmp_path):
    from facescope.engine.checkpoint import load_checkpoint
    from facescope.engine.trainer import fit

    fit(_ddp_config(tiny_dataset, tmp_path / "single", 2), progress=False)
    mp.spawn(_rank_main, args=(2, _free_port(), tiny_dataset, tmp_path / "ddp"), nprocs=2, join=True)
    a, b = load_checkpoint(tmp_path / "single" / "last.pth")["model"], load_checkpoint(tmp_path / "ddp" / "last.pth")["model"]
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-5, worst
