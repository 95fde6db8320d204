"""Loss normalisers that are averaged across data-parallel ranks."""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def mean_across_ranks(value: Tensor) -> Tensor:
    """Average a detached scalar over all ranks (identity outside ``torch.distributed``)."""
    value = value.detach().clone().float()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value
