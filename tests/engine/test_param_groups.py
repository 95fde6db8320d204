"""Optimizer parameter groups from rules: frozen layers, learning-rate multipliers, clear errors."""

import pytest
import torch
from torch import nn

from facescope.config import from_dict
from facescope.engine.config import OptimConfig
from facescope.engine.param_groups import ParamRule, build_param_groups, set_group_learning_rates
from facescope.errors import ConfigError


def tiny_model() -> nn.Sequential:
    """h = W0 x + b0 (frozen below), y = w1 . h + b1; parameters '0.weight', '0.bias', '1.weight', '1.bias'."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[0].bias.copy_(torch.tensor([0.5, -0.5]))
        model[1].weight.copy_(torch.tensor([[0.3, 0.7]]))
        model[1].bias.copy_(torch.tensor([0.1]))
    return model


def test_frozen_layer_stays_and_the_x2_group_moves_twice_the_base_step():
    model = tiny_model()
    rules = [ParamRule("0.*", frozen=True), ParamRule("1.weight", lr_mult=2.0)]
    groups = build_param_groups(model, rules, weight_decay=0.0)
    assert groups.frozen == ["0.weight", "0.bias"] and groups.lr_mults == [1.0, 2.0]  # default group (1.bias) first
    optimizer = torch.optim.SGD(groups.groups, lr=0.1, momentum=0.0, weight_decay=0.0)
    set_group_learning_rates(optimizer, 0.1, groups.lr_mults)
    model(torch.tensor([[1.0, 2.0]])).sum().backward()
    optimizer.step()
    # Frozen: no gradient, unchanged.
    assert model[0].weight.grad is None and torch.equal(model[0].weight, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(model[0].bias, torch.tensor([0.5, -0.5]))
    # d y / d b1 = 1: base step 0.1 * 1 -> 0.1 - 0.1 = 0.
    assert model[1].bias.item() == pytest.approx(0.0, abs=1e-7)
    # d y / d w1 = h = (1 + 0.5, 2 - 0.5) = (1.5, 1.5): step 2 x 0.1 x 1.5 = 0.3 -> (0.0, 0.4).
    assert torch.allclose(model[1].weight, torch.tensor([[0.0, 0.4]]), atol=1e-7)


def test_decay_multiplier_and_the_default_group():
    model = tiny_model()
    groups = build_param_groups(model, [ParamRule("*.bias", decay_mult=0.0)], weight_decay=5e-4)
    assert [g["weight_decay"] for g in groups.groups] == [5e-4, 0.0]
    assert [len(g["params"]) for g in groups.groups] == [2, 2] and groups.frozen == []
    assert all(p.requires_grad for p in model.parameters())


def test_shf_freezing_conv1_2_and_doubling_the_rest_is_expressible():
    model = nn.Module()
    model.backbone = nn.ModuleDict({name: nn.Conv2d(3, 3, 3) for name in ("conv1", "conv2", "conv3")})
    model.head = nn.Conv2d(3, 2, 1)
    rules = [ParamRule("backbone.conv1.*", frozen=True), ParamRule("backbone.conv2.*", frozen=True), ParamRule("*", lr_mult=2.0)]
    groups = build_param_groups(model, rules, weight_decay=5e-4)
    assert groups.frozen == ["backbone.conv1.weight", "backbone.conv1.bias", "backbone.conv2.weight", "backbone.conv2.bias"]
    assert groups.lr_mults == [2.0] and len(groups.groups[0]["params"]) == 4  # conv3 + head, all at x2


def test_rule_matching_nothing_or_only_taken_parameters_is_an_error():
    with pytest.raises(ConfigError, match=r"optim.param_groups\[1\] \(pattern 'body.\*'\) matches no parameter of tiny; "
                                          r"parameter names look like '0.weight', '0.bias', '1.weight'"):
        build_param_groups(tiny_model(), [ParamRule("0.*"), ParamRule("body.*")], 0.0, "tiny")
    with pytest.raises(ConfigError, match=r"optim.param_groups\[1\] \(pattern '1.bias'\) matches only parameters that earlier rules"):
        build_param_groups(tiny_model(), [ParamRule("*"), ParamRule("1.bias", lr_mult=2.0)], 0.0)


def test_rules_are_typed_recipe_entries():
    optim = from_dict(OptimConfig, {"param_groups": [{"pattern": "backbone.*", "frozen": True}, {"pattern": "*", "lr_mult": 2}]})
    assert optim.param_groups == [ParamRule("backbone.*", frozen=True), ParamRule("*", lr_mult=2.0)]
    with pytest.raises(ConfigError, match=r"unknown key 'optim.param_groups\[0\].frozn' \(did you mean 'frozen'\?\)"):
        _load_optim({"param_groups": [{"pattern": "x", "frozn": True}]})
    with pytest.raises(ConfigError, match=r"'optim.param_groups\[0\].frozen' rule cannot also set lr_mult or decay_mult"):
        _load_optim({"param_groups": [{"pattern": "x", "frozen": True, "lr_mult": 2.0}]})


def _load_optim(optim: dict) -> OptimConfig:
    from facescope.engine.config import TrainConfig

    return from_dict(TrainConfig, {"model": "scrfd_500m_kps", "optim": optim}).optim


def test_frozen_parameters_do_not_change_in_training(tiny_dataset, tmp_path):
    from engine_testing import tiny_config

    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, run

    config = tiny_config(tiny_dataset, tmp_path, max_iters=1)
    config.optim.param_groups = [ParamRule("backbone.*", frozen=True), ParamRule("bbox_head.*", lr_mult=2.0)]
    trainer = build_trainer(config, DistInfo(), torch.device("cpu"), False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    run(trainer, progress=False)
    after = trainer.model.state_dict()
    frozen = [k for k, _ in trainer.model.named_parameters() if k.startswith("backbone.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["neck.lateral_convs.0.conv.weight"], after["neck.lateral_convs.0.conv.weight"])
    assert [g["lr"] for g in trainer.optimizer.param_groups][1] == 2 * trainer.optimizer.param_groups[0]["lr"]
