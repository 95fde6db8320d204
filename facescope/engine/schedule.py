"""Learning-rate schedule: linear warm-up by iteration, step decay by epoch (mmcv ``step`` policy)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def learning_rate(
    base_lr: float,
    iteration: int,
    epoch: int,
    warmup_iters: int,
    warmup_ratio: float,
    milestones: Sequence[int],
    gamma: float,
) -> float:
    """Learning rate at a 0-based ``iteration`` within 0-based ``epoch``.

    After warm-up: ``base_lr * gamma ** (number of milestones <= epoch)``. During warm-up that value
    is scaled by ``1 - (1 - iteration / warmup_iters) * (1 - warmup_ratio)``, i.e. it rises linearly
    from ``warmup_ratio`` times the regular rate.
    """
    regular = base_lr * gamma ** bisect.bisect_right(sorted(milestones), epoch)
    if iteration < warmup_iters:
        return regular * (1 - (1 - iteration / warmup_iters) * (1 - warmup_ratio))
    return regular
