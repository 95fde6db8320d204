"""Optimizer parameter groups from rules in the recipe (``optim.param_groups``).

Each :class:`ParamRule` matches parameter names (``model.named_parameters()``) with a shell pattern
(:func:`fnmatch.fnmatchcase`). A parameter belongs to the FIRST rule that matches it; parameters
no rule matches form the default group (learning rate and weight decay of ``optim``). A frozen rule's
parameters get ``requires_grad=False`` and are left out of the optimizer; every other rule is one
optimizer group whose learning rate is ``lr_mult`` times the schedule's and whose weight decay is
``decay_mult`` times ``optim.weight_decay``.

A rule may also name the group's optimizer (``sgd``, ``adam``, ``adamw``; default ``optim.optimizer``),
a constant learning rate that ignores the schedule (``fixed_lr``), Adam's ``betas``, and the parameter
set the group belongs to (``network``, the default, or ``architecture``): the ``bilevel`` step strategy
(:mod:`facescope.engine.steps`) updates the two sets in alternation on two halves of the data.

Example (SHF: conv1-2 frozen, everything else at twice the learning rate)::

    optim:
      param_groups:
        - {pattern: "backbone.conv1*", frozen: true}
        - {pattern: "backbone.conv2*", frozen: true}
        - {pattern: "*", lr_mult: 2.0}

Example (a DARTS-style search: architecture weights by Adam at a constant 3e-4, the rest by SGD)::

    optim:
      optimizer: sgd
      step_strategy: bilevel
      param_groups:
        - {pattern: "*.alphas", parameter_set: architecture, optimizer: adam, fixed_lr: 3.0e-4, betas: [0.5, 0.999]}
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from facescope.config import require
from facescope.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

OptimizerName = Literal["sgd", "adam", "adamw"]
ParameterSet = Literal["network", "architecture"]
NETWORK: ParameterSet = "network"


@dataclass
class ParamRule:
    """One rule of ``optim.param_groups``.

    Attributes:
        pattern: shell pattern on parameter names, e.g. ``"backbone.stage1.*"`` or ``"*.bias"``.
        frozen: no gradient, not optimised.
        lr_mult: learning-rate multiplier of the matched parameters (> 0).
        decay_mult: weight-decay multiplier of the matched parameters (>= 0).
        optimizer: the group's optimizer, ``sgd``, ``adam`` or ``adamw`` (None: ``optim.optimizer``).
        fixed_lr: a constant learning rate for the group instead of the schedule's times ``lr_mult``.
        betas: Adam/AdamW ``(beta1, beta2)`` of the group (None: ``optim.betas``).
        parameter_set: ``network`` or ``architecture`` (which half-step of ``bilevel`` updates them).
    """

    pattern: str
    frozen: bool = False
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    optimizer: OptimizerName | None = None
    fixed_lr: float | None = None
    betas: tuple[float, float] | None = None
    parameter_set: ParameterSet = NETWORK

    def __post_init__(self) -> None:
        require(bool(self.pattern), "pattern", "must not be empty")
        require(self.lr_mult > 0, "lr_mult", f"must be > 0 (use frozen: true to stop training), got {self.lr_mult}")
        require(self.decay_mult >= 0, "decay_mult", f"must be >= 0, got {self.decay_mult}")
        require(self.fixed_lr is None or self.fixed_lr > 0, "fixed_lr", f"must be > 0 (or null: the schedule), got {self.fixed_lr}")
        require(self.fixed_lr is None or self.lr_mult == 1.0, "fixed_lr", "rule cannot also set lr_mult (a fixed rate ignores the schedule)")
        require(self.betas is None or all(0 <= b < 1 for b in self.betas), "betas", f"must be in [0, 1), got {self.betas}")
        if self.frozen:
            changed = [name for name, value in self._training_settings().items() if value != _DEFAULTS[name]]
            require(
                not changed, "frozen",
                f"rule cannot also set lr_mult or decay_mult (nor optimizer, fixed_lr, betas, parameter_set); it sets {', '.join(changed)}",
            )  # fmt: skip

    def _training_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _DEFAULTS}


_DEFAULTS: dict[str, Any] = {
    "lr_mult": 1.0, "decay_mult": 1.0, "optimizer": None, "fixed_lr": None, "betas": None, "parameter_set": NETWORK,
}  # fmt: skip


@dataclass
class ParamGroups:
    """The optimizer groups built from the rules.

    Attributes:
        groups: ``torch.optim`` parameter groups (``params``, ``weight_decay``, and ``betas`` where a rule
            sets them), default group first.
        lr_mults: learning-rate multiplier of each group, in the same order.
        frozen: names of the frozen parameters.
        optimizers: the optimizer name of each group, in the same order.
        parameter_sets: the parameter set (``network`` / ``architecture``) of each group.
        fixed_lrs: each group's constant learning rate, None where it follows the schedule.
    """

    groups: list[dict[str, Any]]
    lr_mults: list[float]
    frozen: list[str]
    optimizers: list[str] = field(default_factory=list)
    parameter_sets: list[str] = field(default_factory=list)
    fixed_lrs: list[float | None] = field(default_factory=list)


def build_param_groups(
    model: nn.Module,
    rules: Sequence[ParamRule],
    weight_decay: float,
    model_name: str = "the model",
    default_optimizer: str = "sgd",
) -> ParamGroups:
    """Split ``model``'s parameters by ``rules`` and freeze the frozen ones (unmatched parameters form
    the default group: ``default_optimizer``, the ``network`` set, the schedule's learning rate).

    Raises:
        ConfigError: a rule matches no parameter, or only parameters that earlier rules took.
    """
    named = list(model.named_parameters())
    owner = [_first_match(name, rules) for name, _ in named]
    _check_every_rule_is_used(rules, [name for name, _ in named], owner, model_name)
    default = [param for (_, param), rule in zip(named, owner) if rule is None]
    result = ParamGroups([], [], [])
    if default:
        _add_group(result, {"params": default, "weight_decay": weight_decay}, 1.0, default_optimizer, NETWORK, None)
    for index, rule in enumerate(rules):
        params = [param for (_, param), r in zip(named, owner) if r == index]
        if rule.frozen:
            for (name, param), r in zip(named, owner):
                if r == index:
                    param.requires_grad_(False)
                    result.frozen.append(name)
            continue
        group: dict[str, Any] = {"params": params, "weight_decay": weight_decay * rule.decay_mult}
        if rule.betas is not None:
            group["betas"] = tuple(rule.betas)
        _add_group(result, group, rule.lr_mult, rule.optimizer or default_optimizer, rule.parameter_set, rule.fixed_lr)
    return result


def _add_group(
    groups: ParamGroups, group: dict[str, Any], lr_mult: float, optimizer: str, parameter_set: str, fixed_lr: float | None
) -> None:
    groups.groups.append(group)
    groups.lr_mults.append(lr_mult)
    groups.optimizers.append(optimizer)
    groups.parameter_sets.append(parameter_set)
    groups.fixed_lrs.append(fixed_lr)


def set_group_learning_rates(
    optimizer: torch.optim.Optimizer, lr: float, lr_mults: Sequence[float], fixed_lrs: Sequence[float | None] | None = None
) -> None:
    """The schedule's ``lr`` times each group's multiplier, or the group's fixed rate (groups in
    :class:`ParamGroups` order)."""
    fixed = fixed_lrs if fixed_lrs is not None else [None] * len(lr_mults)
    for group, lr_mult, fixed_lr in zip(optimizer.param_groups, lr_mults, fixed, strict=True):
        group["lr"] = fixed_lr if fixed_lr is not None else lr * lr_mult


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
