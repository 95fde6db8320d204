"""Training samplers: which images each step trains on, chosen by name in the recipe (``data.sampler``).

A sampler follows the :class:`TrainSampler` protocol. After every step the trainer calls
``update(indices, per_image_stats)`` with the step's dataset indices and the criterion's per-image
statistics (:attr:`~facescope.losses.criteria.CriterionResult.per_image`), so a sampler can mine hard
images (SHF); its ``state_dict`` goes into every checkpoint, so a resumed run continues exactly.

Distributed training: the trainer gathers indices and statistics from all ranks
(:func:`facescope.distributed.all_gather_cat`, in rank order, which is the order of the global batch)
before calling ``update``, so every rank applies the same update to the same state. An ``update``
must therefore be a deterministic function of its arguments and the state; rank 0 saves the state.

Example:
    >>> from facescope.engine.samplers import build_sampler, list_samplers
    >>> "sharded" in list_samplers()
    True
    >>> sampler = build_sampler("sharded", {}, num_samples=10, batch_size=4, seed=0)
    >>> sampler.batches_per_epoch()
    3
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.utils.data import Sampler

from facescope.engine.factories import FactoryEntry, register_factory
from facescope.errors import ConfigError
from facescope.named_registry import NamedRegistry


@runtime_checkable
class TrainSampler(Protocol):
    """What the trainer needs from a sampler (a ``torch.utils.data.Sampler`` of dataset indices).

    Contract, for exact resume and for results that do not depend on the loader's worker count:
    the order an epoch yields is fixed when ``set_epoch`` is called (the DataLoader reads indices
    ahead of training), from the state at that moment; ``update`` calls during the epoch affect
    later epochs. ``state_dict`` holds what is needed to yield the same order again after a
    restart mid-epoch (e.g. the epoch's order or the statistics it was drawn from), as tensors,
    numbers, strings, lists and dicts (checkpoints are read with ``torch.load(weights_only=True)``).
    """

    def __iter__(self) -> Iterator[int]:
        """This rank's dataset indices for the rest of the epoch, ``batch_size`` per step."""
        ...

    def __len__(self) -> int:
        """Number of indices ``__iter__`` yields."""
        ...

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Start ``epoch`` (0-based) at batch ``start_batch`` (> 0 when resuming mid-epoch)."""
        ...

    def batches_per_epoch(self) -> int:
        """Steps in the current epoch (the same on every rank)."""
        ...

    def update(self, indices: Tensor, per_image_stats: Mapping[str, Tensor]) -> None:
        """After a step: ``indices`` ``Tensor[G]`` (int64, CPU) of the global batch, and per-image
        statistics ``name -> Tensor[G]`` (CPU) in the same order."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


SamplerFactory = Callable[..., TrainSampler]
# A registered sampler: ``factory(num_samples, batch_size, *, seed, rank, world_size[, options])``, with
# ``options_type`` the dataclass of its ``data.sampler_options`` (None: it takes none).

_SAMPLERS: NamedRegistry[FactoryEntry] = NamedRegistry("sampler")


def register_sampler(name: str, *, summary: str, options_type: type | None = None) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator registering a sampler factory under ``name``; a duplicate name is an error."""
    return register_factory(_SAMPLERS, name, summary=summary, options_type=options_type)


def list_samplers() -> list[str]:
    """Registered sampler names, sorted."""
    return _SAMPLERS.names()


def get_sampler(name: str) -> FactoryEntry:
    """Look ``name`` up; an unknown name is a :class:`ConfigError` with the closest registered one."""
    return _SAMPLERS.get(name)


def sampler_options(name: str, options: Mapping[str, Any]) -> Any:
    """``data.sampler_options`` as the sampler's typed options (None when it takes none)."""
    return get_sampler(name).typed_options(options, "data.sampler_options")


def build_sampler(
    name: str, options: Mapping[str, Any], num_samples: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1
) -> TrainSampler:
    """Build the registered sampler ``name`` for a dataset of ``num_samples`` images."""
    return get_sampler(name).build(
        num_samples, batch_size, options=options, source="data.sampler_options", seed=seed, rank=rank, world_size=world_size
    )


class ShardedSampler(Sampler[int]):
    """Epoch-seeded permutation, split across ranks, that can start mid-epoch (``update`` is a no-op).

    Each epoch the indices are shuffled with ``seed + epoch``, padded (by repetition) to a multiple of
    ``world_size * batch_size``, and rank ``r`` takes every ``world_size``-th batch-slot: a global
    batch of ``world_size * batch_size`` consecutive indices is split into per-rank batches, so N
    processes see exactly the global batches 1 process would. ``start_batch`` skips batches already
    trained (exact resume).
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def global_order(self) -> list[int]:
        """This epoch's indices for all ranks, padded to whole global batches."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        return pad_to_global_batches(order, self.batch_size * self.world_size)

    def batches_per_epoch(self) -> int:
        return len(self.global_order()) // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter_rank_batches(self.global_order(), self.start_batch, self.batch_size, self.rank, self.world_size)

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch_size

    def update(self, indices: Tensor, per_image_stats: Mapping[str, Tensor]) -> None:
        """Nothing to learn: the order depends on the seed and the epoch only."""

    def state_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("num_samples", self.num_samples) != self.num_samples:
            raise ConfigError(
                f"the checkpoint was trained on {state['num_samples']} images, the recipe's data has {self.num_samples}; "
                "resume with the same training data"
            )


def pad_to_global_batches(order: list[int], global_batch: int) -> list[int]:
    """``order`` padded by repetition to a multiple of ``global_batch``."""
    padding = (-len(order)) % global_batch
    return order + (order * (padding // max(len(order), 1) + 1))[:padding]


def iter_rank_batches(order: list[int], start_batch: int, batch_size: int, rank: int, world_size: int) -> Iterator[int]:
    """Rank ``rank``'s slice of each global batch of ``order``, from global batch ``start_batch`` on."""
    global_batch = batch_size * world_size
    for b in range(start_batch, len(order) // global_batch):
        start = b * global_batch + rank * batch_size
        yield from order[start : start + batch_size]


@register_sampler("sharded", summary="seeded shuffle per epoch, global batches split across ranks (the default)")
def sharded_sampler(num_samples: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> ShardedSampler:
    """Today's default: :class:`ShardedSampler` with shuffling."""
    return ShardedSampler(num_samples, batch_size, seed, rank, world_size)


class HardImageMiningSampler(ShardedSampler):
    """SHF's hard image mining as a sampler: :class:`ShardedSampler`'s order without some easy images.

    ``update`` feeds the criterion's per-image statistics (``min_positive_score``, ``num_positive``) to
    a :class:`~facescope.engine.hard_image_miner.HardImageMiner`. When an epoch starts (``set_epoch``),
    its shuffled order is drawn as :class:`ShardedSampler`'s and every image marked easy is left out
    with probability ``skip_prob``, one draw per easy image in order from
    ``numpy.random.default_rng((seed, epoch))``. The order is fixed then and kept in the state, with the
    marks, so a run resumed mid-epoch trains the same images. ``epoch_log`` records, per epoch, how many
    images were marked easy when it started, how many were skipped and how many it trains.
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, options: Any = None
    ) -> None:
        from facescope.engine.hard_image_miner import HardImageMiner, HardImageMiningConfig

        super().__init__(num_samples, batch_size, seed, rank, world_size)
        self.miner = HardImageMiner(num_samples, options if options is not None else HardImageMiningConfig())
        self.order: list[int] = []
        self.order_epoch = -1
        self.epoch_log: list[dict[str, int]] = []

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        import numpy as np

        super().set_epoch(epoch, start_batch)
        if self.order_epoch == epoch:
            return  # resumed mid-epoch: the order drawn when the epoch started
        full = super().global_order()[: self.num_samples]  # the seeded permutation, unpadded
        kept = self.miner.filter_epoch(full, np.random.default_rng((self.seed, epoch)))
        if not kept and full:
            kept = full[:1]  # every image skipped: train one rather than an empty epoch
        self.order, self.order_epoch = kept, epoch
        self.epoch_log.append(
            {"epoch": epoch, "easy": self.miner.num_easy, "skipped": len(full) - len(kept), "trained": len(kept)}
        )

    def global_order(self) -> list[int]:
        return pad_to_global_batches(self.order, self.batch_size * self.world_size)

    def update(self, indices: Tensor, per_image_stats: Mapping[str, Tensor]) -> None:
        """Mark the batch's images easy or hard (affects the epochs that start later)."""
        self.miner.update(indices, per_image_stats)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "miner": self.miner.state_dict(),
            "order": list(self.order),
            "order_epoch": self.order_epoch,
            "epoch_log": [dict(entry) for entry in self.epoch_log],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.miner.load_state_dict(state["miner"])
        self.order = [int(i) for i in state["order"]]
        self.order_epoch = int(state["order_epoch"])
        self.epoch_log = [{k: int(v) for k, v in entry.items()} for entry in state["epoch_log"]]


def _hard_image_mining_options() -> type:
    from facescope.engine.hard_image_miner import HardImageMiningConfig

    return HardImageMiningConfig


@register_sampler(
    "hard_image_mining",
    summary="SHF: as 'sharded', but images the detector already handles (all positive anchors >= 0.85) "
    "are skipped with probability 0.7 in later epochs; options rule (released | wpas), threshold, skip_prob",
    options_type=_hard_image_mining_options(),
)
def hard_image_mining_sampler(
    num_samples: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, options: Any = None
) -> HardImageMiningSampler:
    """:class:`HardImageMiningSampler` (options: :class:`~facescope.engine.hard_image_miner.HardImageMiningConfig`)."""
    return HardImageMiningSampler(num_samples, batch_size, seed, rank, world_size, options)
