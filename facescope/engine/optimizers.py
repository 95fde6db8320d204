"""The optimizers of a run: named in the recipe (``optim.optimizer`` and per ``optim.param_groups`` rule),
one ``torch.optim`` optimizer per (parameter set, optimizer name) pair.

Groups of one optimizer name and one parameter set share a ``torch.optim`` object (they differ in
learning rate, weight decay or betas only); ``network`` and ``architecture`` parameters never share
one, so a step strategy can update one set and leave the other (:mod:`facescope.engine.steps`). The
checkpoint holds every part's state by name.

Example:
    >>> from torch import nn
    >>> from facescope.engine.config import OptimConfig
    >>> from facescope.engine.param_groups import ParamRule
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> config = OptimConfig(optimizer="sgd", param_groups=[ParamRule("1.*", parameter_set="architecture", optimizer="adam")])
    >>> [part.name for part in build_optimizers(model, config).parts]
    ['network.sgd', 'architecture.adam']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from facescope.engine.param_groups import ParamGroups, build_param_groups, set_group_learning_rates
from facescope.errors import FacescopeError

if TYPE_CHECKING:  # pragma: no cover
    from facescope.engine.config import OptimConfig

OptimizerFactory = Callable[[list[dict[str, Any]], "OptimConfig"], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda groups, c: torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda groups, c: torch.optim.Adam(groups, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay),
    "adamw": lambda groups, c: torch.optim.AdamW(groups, lr=c.lr, betas=tuple(c.betas), eps=c.eps, weight_decay=c.weight_decay),
}  # the names optim.optimizer and ParamRule.optimizer accept (their Literal types list the same)


@dataclass
class OptimizerPart:
    """One ``torch.optim`` optimizer over the groups of one parameter set and optimizer name.

    Attributes:
        name: ``"<parameter set>.<optimizer>"``, e.g. ``"network.sgd"`` (the key of its checkpoint state).
        parameter_set: ``"network"`` or ``"architecture"``.
        optimizer: the torch optimizer.
        lr_mults: per group, the schedule's multiplier.
        fixed_lrs: per group, a constant learning rate (None: the schedule's).
    """

    name: str
    parameter_set: str
    optimizer: torch.optim.Optimizer
    lr_mults: list[float]
    fixed_lrs: list[float | None]

    def parameters(self) -> Iterator[nn.Parameter]:
        for group in self.optimizer.param_groups:
            yield from group["params"]


@dataclass
class Optimizers:
    """Every optimizer of a run (:func:`build_optimizers`)."""

    parts: list[OptimizerPart]

    def of(self, parameter_set: str | None = None) -> list[OptimizerPart]:
        """The parts updating ``parameter_set`` (None: all)."""
        return [p for p in self.parts if parameter_set is None or p.parameter_set == parameter_set]

    def set_learning_rates(self, lr: float) -> None:
        """The schedule's ``lr`` times each group's multiplier, or the group's fixed rate."""
        for part in self.parts:
            set_group_learning_rates(part.optimizer, lr, part.lr_mults, part.fixed_lrs)

    def zero_grad(self) -> None:
        for part in self.parts:
            part.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": {part.name: part.optimizer.state_dict() for part in self.parts}}

    def load_state_dict(self, state: Mapping[str, Any], source: str) -> None:
        """Restore every part; a checkpoint of other optimizers or group counts is refused naming both.

        A checkpoint of a single optimizer (written before optimizers were named) loads into a run of one."""
        saved = dict(state["parts"]) if "parts" in state else {self.parts[0].name: state} if len(self.parts) == 1 else dict(state)
        if sorted(saved) != sorted(p.name for p in self.parts):
            raise FacescopeError(
                f"{source} has optimizers {sorted(saved)}, the recipe's optim section gives {sorted(p.name for p in self.parts)}; "
                "resume with the optimizers the run started with"
            )
        for part in self.parts:
            saved_groups, groups = len(saved[part.name]["param_groups"]), len(part.optimizer.param_groups)
            if saved_groups != groups:
                raise FacescopeError(
                    f"{source} has {saved_groups} optimizer parameter group(s) in {part.name}, the recipe's optim.param_groups "
                    f"give {groups}; resume with the rules the run started with"
                )
            part.optimizer.load_state_dict(saved[part.name])


def build_optimizers(model: nn.Module, config: OptimConfig, model_name: str = "the model") -> Optimizers:
    """Freeze, group and hand ``model``'s parameters to the optimizers ``config`` names (network set first)."""
    groups = build_param_groups(model, config.param_groups, config.weight_decay, model_name, config.optimizer)
    return Optimizers([_part(groups, key, config) for key in _part_keys(groups)])


def _part_keys(groups: ParamGroups) -> list[tuple[str, str]]:
    keys = list(dict.fromkeys(zip(groups.parameter_sets, groups.optimizers)))
    return sorted(keys, key=lambda key: key[0] != "network")  # stable: network parts first, then by first use


def _part(groups: ParamGroups, key: tuple[str, str], config: OptimConfig) -> OptimizerPart:
    members = [i for i, k in enumerate(zip(groups.parameter_sets, groups.optimizers)) if k == key]
    optimizer = OPTIMIZERS[key[1]]([groups.groups[i] for i in members], config)
    return OptimizerPart(
        f"{key[0]}.{key[1]}", key[0], optimizer, [groups.lr_mults[i] for i in members], [groups.fixed_lrs[i] for i in members]
    )
