"""The one set of ``torch.distributed`` helpers, used by training (:mod:`facescope.engine`) and
evaluation (:mod:`facescope.eval`).

Everything also runs as one plain process, where the collectives are identities. Importing this
module does not import torch: evaluation with ONNX weights stays torch-free until a process group
is actually needed (``torchrun`` with ``WORLD_SIZE > 1``).
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the ``torchrun`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    """True when a process group exists (False, without importing torch, when torch is not loaded)."""
    dist = sys.modules.get("torch.distributed")  # no process group can exist before torch is imported
    return dist is not None and dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised process group, else of torchrun's environment."""
    if is_initialized():
        import torch.distributed as dist

        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def init_distributed(device: str) -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by ``torchrun`` and choose the device.

    ``device="auto"`` picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; the backend
    is NCCL on GPU and gloo on CPU.
    """
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device == "auto":
        device = f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{info.local_rank}"
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    if info.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch_device.type == "cuda" else "gloo")
    return info, torch_device


@contextmanager
def process_group_if_needed(timeout_hours: float = 12.0) -> Iterator[tuple[int, int]]:
    """Yield ``(rank, world_size)``; under torchrun without a group, a gloo group lives for the block.

    A group that already exists (e.g. the trainer's) is used and left alone.
    """
    rank, world = rank_world()
    created = False
    if world > 1 and not is_initialized():
        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=timeout_hours))
        created = True
    try:
        yield rank, world
    finally:
        if created:
            cleanup()


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` (any picklable object) on every rank."""
    if not is_initialized():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is True on every rank (so all ranks stop together)."""
    if not is_initialized():
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0)


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """Average a detached scalar over all ranks (a float32 copy; identity outside ``torch.distributed``).

    Loss normalisers (e.g. the positive count) use it so N processes normalise by what one process
    with the whole global batch would."""
    value = value.detach().clone().float()
    if not is_initialized():
        return value
    import torch.distributed as dist

    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``Tensor[n_r, ...]`` along dim 0, in rank order.

    The ``n_r`` may differ between ranks (each rank's rows are padded to the largest for the
    collective, then trimmed). Every rank gets the same ``Tensor[sum(n_r), ...]``; in one process
    the input is returned unchanged. The tensor must live on the backend's device (CUDA for NCCL).
    """
    if not is_initialized():
        return tensor
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.int64)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(gathered, sizes)])


def cleanup() -> None:
    """Destroy the process group, if any."""
    if is_initialized():
        import torch.distributed as dist

        dist.destroy_process_group()
