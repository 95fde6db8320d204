"""Optimizers named in the recipe: one torch optimizer per (parameter set, name), fixed rates, betas,
checkpoint states by name."""

import pytest
import torch
from torch import nn

from facescope.config import from_dict
from facescope.engine.config import OptimConfig
from facescope.engine.optimizers import build_optimizers
from facescope.engine.param_groups import ParamRule
from facescope.errors import ConfigError, FacescopeError


def three_layers():
    return nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))


def test_rules_route_groups_to_named_optimizers_and_sets():
    config = OptimConfig(
        optimizer="adamw", lr=0.1, betas=(0.8, 0.99), weight_decay=0.01,
        param_groups=[ParamRule("1.*", optimizer="sgd", lr_mult=2.0),
                      ParamRule("2.*", parameter_set="architecture", optimizer="adam", fixed_lr=3e-4, betas=(0.5, 0.999))],
    )  # fmt: skip
    optimizers = build_optimizers(three_layers(), config)
    assert [p.name for p in optimizers.parts] == ["network.adamw", "network.sgd", "architecture.adam"]
    adamw, sgd, adam = (p.optimizer for p in optimizers.parts)
    assert (type(adamw), type(sgd), type(adam)) == (torch.optim.AdamW, torch.optim.SGD, torch.optim.Adam)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.99) and adam.param_groups[0]["betas"] == (0.5, 0.999)
    optimizers.set_learning_rates(0.05)  # the schedule's rate: 0.05 x mult, the fixed group keeps its own
    assert [g["lr"] for p in optimizers.parts for g in p.optimizer.param_groups] == [0.05, 0.1, 3e-4]
    assert [len(optimizers.of("network")), len(optimizers.of("architecture")), len(optimizers.of())] == [2, 1, 3]


def test_states_are_saved_by_name_and_a_different_recipe_is_refused():
    model = three_layers()
    config = OptimConfig(param_groups=[ParamRule("2.*", parameter_set="architecture", optimizer="adam")])
    optimizers = build_optimizers(model, config)
    state = optimizers.state_dict()
    assert sorted(state["parts"]) == ["architecture.adam", "network.sgd"]
    build_optimizers(three_layers(), config).load_state_dict(state, "ckpt.pth")
    with pytest.raises(FacescopeError, match=r"ckpt.pth has optimizers \['architecture.adam', 'network.sgd'\], the recipe's optim section gives \['network.sgd'\]"):
        build_optimizers(three_layers(), OptimConfig()).load_state_dict(state, "ckpt.pth")
    # a checkpoint of the single SGD optimizer of earlier versions loads into a single-optimizer run
    single = build_optimizers(three_layers(), OptimConfig())
    single.load_state_dict(single.parts[0].optimizer.state_dict(), "old.pth")


def test_rule_settings_are_checked_when_the_recipe_is_read():
    with pytest.raises(ConfigError, match=r"'param_groups\[0\].fixed_lr' rule cannot also set lr_mult"):
        from_dict(OptimConfig, {"param_groups": [{"pattern": "x", "fixed_lr": 0.1, "lr_mult": 2.0}]})
    with pytest.raises(ConfigError, match=r"'param_groups\[0\].frozen' rule cannot also set lr_mult or decay_mult \(nor optimizer, fixed_lr, betas, parameter_set\); it sets optimizer"):
        from_dict(OptimConfig, {"param_groups": [{"pattern": "x", "frozen": True, "optimizer": "adam"}]})
    with pytest.raises(ConfigError, match=r"'param_groups\[0\].optimizer' must be one of \['sgd', 'adam', 'adamw'\], got 'adagrad'"):
        from_dict(OptimConfig, {"param_groups": [{"pattern": "x", "optimizer": "adagrad"}]})
    with pytest.raises(ConfigError, match=r"'betas' must be in \[0, 1\), got \[0.9, 1.0\]"):
        from_dict(OptimConfig, {"betas": [0.9, 1.0]})
