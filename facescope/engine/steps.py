"""Step strategies: what one training iteration does, chosen by name in the recipe (``optim.step_strategy``).

A strategy owns the data streams of the run (a sampler and a loader each) and, per iteration, decides
which batch updates which parameter set. The trainer gives it one primitive, a *half step*
(:class:`HalfStep`: forward a batch, back-propagate, step the optimizers of one parameter set, feed
the batch's statistics to its sampler), so a strategy never touches models, criteria or scalers.

* ``standard``: one batch of the whole training set, every optimizer steps (the classic iteration).
* ``bilevel``: the training images are split once, by a seeded permutation, into two disjoint halves;
  each iteration first updates the ``architecture`` parameter set on a batch of the architecture half,
  then the ``network`` set on a batch of the network half (first-order DARTS: architecture weights
  learn on data the network weights do not train on). Parameter sets come from ``optim.param_groups``
  rules (``parameter_set: architecture``). An epoch is as many iterations as the smaller half has
  batches. Each half has its own sampler (the recipe's ``data.sampler``, seeded ``seed`` for the
  network half and ``seed + 1000003`` for the architecture half); both states are in every checkpoint,
  so a run resumed mid-epoch continues bit for bit.

Both run under DDP as the classic loop does: each half's sampler splits its global batches across
ranks, and every half step is one forward and backward through the DDP-wrapped model.

Example:
    >>> from facescope.engine.steps import list_step_strategies
    >>> list_step_strategies()
    ['bilevel', 'standard']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from facescope.config import require
from facescope.engine.factories import FactoryEntry, register_factory
from facescope.engine.samplers import TrainSampler, build_sampler
from facescope.errors import ConfigError
from facescope.named_registry import NamedRegistry


class Optimizers(Protocol):
    """What a strategy reads of the run's optimizers (:class:`facescope.engine.optimizers.Optimizers`;
    a protocol here, so this registry, which the recipe reads, does not depend on the optimizers)."""

    def of(self, parameter_set: str | None = None) -> list[Any]:
        """The optimizer parts updating ``parameter_set``."""
        ...

ARCHITECTURE_SEED_OFFSET = 1_000_003  # the architecture half's sampler seed is the run's seed plus this


class HalfStep(Protocol):
    """The trainer's primitive: train ``parameter_set`` (None: every set) on ``batch`` and give the batch's
    per-image statistics to ``sampler``; returns the step's metrics (``loss``, ``loss_*``, ``grad_norm``, ``images``)."""

    def __call__(self, batch: Any, parameter_set: str | None, sampler: TrainSampler) -> dict[str, float]: ...


@dataclass(frozen=True)
class StepData:
    """What a strategy needs to build its data streams.

    Attributes:
        num_samples: images in the training set.
        batch_size: images per process and step.
        seed, rank, world_size: the run's seed and this process's place in the process group.
        sampler, sampler_options: the recipe's ``data.sampler`` and its options (each stream gets one).
        make_loader: a sampler -> an iterable of batches (the trainer's DataLoader over the dataset).
    """

    num_samples: int
    batch_size: int
    seed: int
    rank: int
    world_size: int
    sampler: str
    sampler_options: Mapping[str, Any]
    make_loader: Callable[[TrainSampler], Iterable[Any]]

    def stream(self, num_samples: int, seed: int) -> TrainSampler:
        """The recipe's sampler over ``num_samples`` positions, seeded ``seed``."""
        return build_sampler(
            self.sampler, self.sampler_options, num_samples, self.batch_size, seed=seed, rank=self.rank, world_size=self.world_size
        )


class StepStrategy(Protocol):
    """What the trainer needs from a strategy."""

    name: str
    primary: str  # the stream whose sampler ``trainer.sampler`` is

    @property
    def samplers(self) -> Mapping[str, TrainSampler]:
        """The samplers of the strategy's data streams by name."""
        ...

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Start ``epoch`` at iteration ``start_batch`` (> 0 when resuming mid-epoch)."""
        ...

    def batches_per_epoch(self) -> int: ...

    def batches(self) -> Iterator[dict[str, Any]]:
        """Per remaining iteration of the epoch, a batch per stream."""
        ...

    def step(self, batches: dict[str, Any], half_step: HalfStep) -> dict[str, float]:
        """One iteration: the half steps, in order; returns the metrics to log."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


StrategyFactory = Callable[..., StepStrategy]
# A registered strategy: ``factory(data: StepData, optimizers: Optimizers[, options])``.
_STRATEGIES: NamedRegistry[FactoryEntry] = NamedRegistry("step strategy")


def register_step_strategy(name: str, *, summary: str, options_type: type | None = None) -> Callable[[StrategyFactory], StrategyFactory]:
    """Decorator registering a strategy factory under ``name``; a duplicate name is an error."""
    return register_factory(_STRATEGIES, name, summary=summary, options_type=options_type)


def list_step_strategies() -> list[str]:
    return _STRATEGIES.names()


def step_options(name: str, options: Mapping[str, Any]) -> Any:
    """``optim.step_options`` as the strategy's typed options (None when it takes none)."""
    return _STRATEGIES.get(name).typed_options(options, "optim.step_options")


def build_step_strategy(name: str, options: Mapping[str, Any], data: StepData, optimizers: Optimizers) -> StepStrategy:
    """Build the registered strategy ``name`` over ``data`` for ``optimizers``."""
    return _STRATEGIES.get(name).build(data, optimizers, options=options, source="optim.step_options")


class StandardStep:
    """One batch of the whole training set per iteration; every optimizer steps."""

    name = "standard"
    primary = "train"

    def __init__(self, data: StepData, optimizers: Optimizers) -> None:
        self.sampler = data.stream(data.num_samples, data.seed)
        self.loader = data.make_loader(self.sampler)

    @property
    def samplers(self) -> Mapping[str, TrainSampler]:
        return {self.primary: self.sampler}

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_batch)

    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch()

    def batches(self) -> Iterator[dict[str, Any]]:
        return ({self.primary: batch} for batch in self.loader)

    def step(self, batches: dict[str, Any], half_step: HalfStep) -> dict[str, float]:
        return half_step(batches[self.primary], None, self.sampler)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()  # the layout checkpoints had before strategies were named

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state_dict(state)


@register_step_strategy("standard", summary="one batch of the whole training set, every optimizer steps (the default)")
def standard_step(data: StepData, optimizers: Optimizers) -> StandardStep:
    return StandardStep(data, optimizers)


@dataclass
class BilevelOptions:
    """Settings of the ``bilevel`` strategy (``optim.step_options``).

    Attributes:
        architecture_fraction: share of the training images in the architecture half (0 < f < 1).
        first: which parameter set steps first in an iteration (DARTS: ``architecture``).
        architecture_start_epoch: epochs (0-based) before this one are warm-up: only the network set trains,
            on its half (ASFD: 20 of 50 search epochs); the architecture half's batches are not drawn then.
    """

    architecture_fraction: float = 0.5
    first: Literal["architecture", "network"] = "architecture"
    architecture_start_epoch: int = 0

    def __post_init__(self) -> None:
        require(0 < self.architecture_fraction < 1, "architecture_fraction", f"must be in (0, 1), got {self.architecture_fraction}")
        require(self.architecture_start_epoch >= 0, "architecture_start_epoch", f"must be >= 0, got {self.architecture_start_epoch}")


def split_halves(num_samples: int, architecture_fraction: float, seed: int) -> dict[str, list[int]]:
    """Disjoint, sorted dataset indices of the ``network`` and ``architecture`` halves: a permutation
    seeded ``seed``, its first ``round(num_samples * architecture_fraction)`` (at least 1, at most
    ``num_samples - 1``) indices go to the architecture half."""
    if num_samples < 2:
        raise ConfigError(f"step strategy 'bilevel' needs at least 2 training images to split in two, got {num_samples}")
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = min(max(round(num_samples * architecture_fraction), 1), num_samples - 1)
    return {"network": sorted(order[cut:]), "architecture": sorted(order[:cut])}


class SubsetSampler:
    """A sampler over the positions of ``members`` (a half of the dataset), yielding dataset indices.

    ``update`` maps the dataset indices of a batch back to positions, so a learning sampler (hard image
    mining) works on a half as it does on the whole set."""

    def __init__(self, inner: TrainSampler, members: Sequence[int]) -> None:
        self.inner = inner
        self.members = list(members)
        self._position = {index: position for position, index in enumerate(self.members)}

    def __iter__(self) -> Iterator[int]:
        return (self.members[position] for position in self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.inner.set_epoch(epoch, start_batch)

    def batches_per_epoch(self) -> int:
        return self.inner.batches_per_epoch()

    def update(self, indices: Tensor, per_image_stats: Mapping[str, Tensor]) -> None:
        positions = torch.tensor([self._position[int(i)] for i in indices.tolist()], dtype=torch.int64)
        self.inner.update(positions, per_image_stats)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:  # the inner sampler's own attributes (e.g. a miner's log)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class BilevelStep:
    """Alternating updates of the ``architecture`` and ``network`` parameter sets on two data halves."""

    name = "bilevel"
    primary = "network"

    def __init__(self, data: StepData, optimizers: Optimizers, options: BilevelOptions | None = None) -> None:
        self.options = options or BilevelOptions()
        for parameter_set in ("architecture", "network"):
            if not optimizers.of(parameter_set):
                raise ConfigError(
                    f"step strategy 'bilevel' needs {parameter_set} parameters to train: give optim.param_groups a rule "
                    f"with parameter_set: architecture for the architecture weights (the rest are the network's)"
                )
        self.halves = split_halves(data.num_samples, self.options.architecture_fraction, data.seed)
        seeds = {"network": data.seed, "architecture": data.seed + ARCHITECTURE_SEED_OFFSET}
        self._samplers = {name: SubsetSampler(data.stream(len(members), seeds[name]), members) for name, members in self.halves.items()}
        self.loaders = {name: data.make_loader(sampler) for name, sampler in self._samplers.items()}
        self.order = (self.options.first, "network" if self.options.first == "architecture" else "architecture")
        self.epoch = self.start_batch = 0

    @property
    def samplers(self) -> Mapping[str, TrainSampler]:
        return self._samplers

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch
        for sampler in self._samplers.values():
            sampler.set_epoch(epoch, start_batch)

    @property
    def warming_up(self) -> bool:
        """The current epoch trains the network set only (before ``architecture_start_epoch``)."""
        return self.epoch < self.options.architecture_start_epoch

    def batches_per_epoch(self) -> int:
        return min(sampler.batches_per_epoch() for sampler in self._samplers.values())

    def batches(self) -> Iterator[dict[str, Any]]:
        # zip stops with the shorter half: the longer half's extra batches of the epoch are not trained
        if self.warming_up:  # the architecture half is not read (nor decoded) while it is not trained
            limit = self.batches_per_epoch() - self.start_batch  # the epoch keeps its length
            for _, network in zip(range(limit), self.loaders["network"]):
                yield {"network": network}
            return
        for network, architecture in zip(self.loaders["network"], self.loaders["architecture"]):
            yield {"network": network, "architecture": architecture}

    def step(self, batches: dict[str, Any], half_step: HalfStep) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for parameter_set in self.order:
            if parameter_set not in batches:  # warm-up: the network set only
                continue
            result = half_step(batches[parameter_set], parameter_set, self._samplers[parameter_set])
            prefix = "" if parameter_set == "network" else "architecture_"
            metrics.update({f"{prefix}{name}": value for name, value in result.items()})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "halves": {name: sampler.state_dict() for name, sampler in self._samplers.items()},
            "split": {name: len(members) for name, members in self.halves.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        split = {name: len(members) for name, members in self.halves.items()}
        if dict(state.get("split", {})) != split:
            raise ConfigError(
                f"the checkpoint's bilevel halves have {dict(state.get('split', {}))} images, this run's {split}; "
                "resume with the same training data, seed and architecture_fraction"
            )
        for name, sampler in self._samplers.items():
            sampler.load_state_dict(state["halves"][name])


@register_step_strategy(
    "bilevel",
    summary="DARTS-style search: the architecture parameter set on a batch of one half of the images, then the "
    "network set on a batch of the other half; options architecture_fraction, first, architecture_start_epoch (warm-up)",
    options_type=BilevelOptions,
)
def bilevel_step(data: StepData, optimizers: Optimizers, options: BilevelOptions | None = None) -> BilevelStep:
    return BilevelStep(data, optimizers, options)
