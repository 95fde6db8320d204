"""Optimizer parameter groups from rules in the recipe (``optim.param_groups``).

Each :class:`ParamRule` matches parameter names (``model.named_parameters()``) with a shell pattern
(:func:`fnmatch.fnmatchcase`). A parameter belongs to the FIRST rule that matches it; parameters
no rule matches form the default group (learning rate and weight decay of ``optim``). A frozen rule's
parameters get ``requires_grad=False`` and are left out of the optimizer; every other rule is one
optimizer group whose learning rate is ``lr_mult`` times the schedule's and whose weight decay is
``decay_mult`` times ``optim.weight_decay``.

Example (SHF: conv1-2 frozen, everything else at twice the learning rate)::

    optim:
      param_groups:
        - {pattern: "backbone.conv1*", frozen: true}
        - {pattern: "backbone.conv2*", frozen: true}
        - {pattern: "*", lr_mult: 2.0}
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facescope.config import require
from facescope.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclass
class ParamRule:
    """One rule of ``optim.param_groups``.

    Attributes:
        pattern: shell pattern on parameter names, e.g. ``"backbone.stage1.*"`` or ``"*.bias"``.
        frozen: no gradient, not optimised.
        lr_mult: learning-rate multiplier of the matched parameters (> 0).
        decay_mult: weight-decay multiplier of the matched parameters (>= 0).
    """

    pattern: str
    frozen: bool = False
    lr_mult: float = 1.0
    decay_mult: float = 1.0

    def __post_init__(self) -> None:
        require(bool(self.pattern), "pattern", "must not be empty")
        require(self.lr_mult > 0, "lr_mult", f"must be > 0 (use frozen: true to stop training), got {self.lr_mult}")
        require(self.decay_mult >= 0, "decay_mult", f"must be >= 0, got {self.decay_mult}")
        if self.frozen:
            require(self.lr_mult == 1.0 and self.decay_mult == 1.0, "frozen", "rule cannot also set lr_mult or decay_mult")


@dataclass
class ParamGroups:
    """The optimizer groups built from the rules.

    Attributes:
        groups: ``torch.optim`` parameter groups (``params`` and ``weight_decay``), default group first.
        lr_mults: learning-rate multiplier of each group, in the same order.
        frozen: names of the frozen parameters.
    """

    groups: list[dict[str, Any]]
    lr_mults: list[float]
    frozen: list[str]


def build_param_groups(model: nn.Module, rules: Sequence[ParamRule], weight_decay: float, model_name: str = "the model") -> ParamGroups:
    """Split ``model``'s parameters by ``rules`` and freeze the frozen ones.

    Raises:
        ConfigError: a rule matches no parameter, or only parameters that earlier rules took.
    """
    named = list(model.named_parameters())
    owner = [_first_match(name, rules) for name, _ in named]
    _check_every_rule_is_used(rules, [name for name, _ in named], owner, model_name)
    default = [param for (_, param), rule in zip(named, owner) if rule is None]
    groups: list[dict[str, Any]] = [{"params": default, "weight_decay": weight_decay}] if default else []
    lr_mults = [1.0] if default else []
    frozen: list[str] = []
    for index, rule in enumerate(rules):
        params = [param for (_, param), r in zip(named, owner) if r == index]
        if rule.frozen:
            for (name, param), r in zip(named, owner):
                if r == index:
                    param.requires_grad_(False)
                    frozen.append(name)
            continue
        groups.append({"params": params, "weight_decay": weight_decay * rule.decay_mult})
        lr_mults.append(rule.lr_mult)
    return ParamGroups(groups, lr_mults, frozen)


def set_group_learning_rates(optimizer: torch.optim.Optimizer, lr: float, lr_mults: Sequence[float]) -> None:
    """The schedule's ``lr`` times each group's multiplier (groups in :class:`ParamGroups` order)."""
    for group, lr_mult in zip(optimizer.param_groups, lr_mults, strict=True):
        group["lr"] = lr * lr_mult


def _first_match(name: str, rules: Sequence[ParamRule]) -> int | None:
    return next((i for i, rule in enumerate(rules) if fnmatch.fnmatchcase(name, rule.pattern)), None)


def _check_every_rule_is_used(rules: Sequence[ParamRule], names: list[str], owner: list[int | None], model_name: str) -> None:
    for index, rule in enumerate(rules):
        if index in owner:
            continue
        where = f"optim.param_groups[{index}] (pattern '{rule.pattern}')"
        if any(fnmatch.fnmatchcase(name, rule.pattern) for name in names):
            raise ConfigError(f"{where} matches only parameters that earlier rules already took (the first matching rule wins)")
        examples = ", ".join(f"'{n}'" for n in names[:3])
        raise ConfigError(f"{where} matches no parameter of {model_name}; parameter names look like {examples}")
