"""The empirical bootstrap of RegNet (Radosavovic et al., 2020) that the SCRFD paper reads its search with.

Given a population of trained models, each with a statistic ``x`` (e.g. the share of computation in
C2) and an accuracy (hard AP), resample the population with replacement many times, take the ``x`` of
the best model (or the mean ``x`` of the best ``top_fraction``) in each resample, and report the
central 95 % interval of those values: the range in which the best models are likely to fall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapEstimate:
    """Where the best models fall along one statistic.

    Attributes:
        low / high: the ``confidence`` interval of the best models' statistic over the resamples.
        median: the median over the resamples.
        best: the statistic of the best model of the whole population.
        resamples: how many resamples were drawn.
    """

    low: float
    high: float
    median: float
    best: float
    resamples: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def empirical_bootstrap(
    statistic: np.ndarray,
    accuracy: np.ndarray,
    *,
    resamples: int = 10_000,
    top_fraction: float = 0.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapEstimate:
    """The likely range of ``statistic`` among the most accurate models.

    Args:
        statistic: ``[N]`` values of the statistic, one per model (e.g. C2's computation ratio).
        accuracy: ``[N]`` accuracies of the same models (higher is better; NaN models are dropped).
        resamples: bootstrap resamples.
        top_fraction: 0 takes the single best model of each resample; ``f > 0`` averages the
            statistic over the best ``ceil(f * N)`` models of it.
        confidence: width of the central interval.
        seed: the resampling is deterministic for a seed.

    Returns:
        :class:`BootstrapEstimate`.

    Example:
        >>> x = np.linspace(0, 1, 101); ap = 1 - (x - 0.3) ** 2
        >>> est = empirical_bootstrap(x, ap, resamples=2000)
        >>> est.contains(0.3), est.high - est.low < 0.1
        (True, True)
    """
    x, ap = np.asarray(statistic, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
    if x.shape != ap.shape or x.ndim != 1:
        raise ValueError(f"statistic and accuracy need the same [N] shape, got {x.shape} and {ap.shape}")
    keep = np.isfinite(x) & np.isfinite(ap)
    x, ap = x[keep], ap[keep]
    if len(x) < 2:
        raise ValueError(f"the bootstrap needs at least 2 models with a finite accuracy, got {len(x)}")
    if not 0.0 <= top_fraction < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"top_fraction must be in [0, 1) and confidence in (0, 1), got {top_fraction}, {confidence}")
    rng = np.random.default_rng(seed)
    top = max(1, int(np.ceil(top_fraction * len(x)))) if top_fraction else 1
    values = np.empty(resamples)
    for start in range(0, resamples, 1000):  # resample in blocks: [block, N] index arrays stay small
        block = min(1000, resamples - start)
        index = rng.integers(0, len(x), size=(block, len(x)))
        best = np.argsort(-ap[index], axis=1, kind="stable")[:, :top]
        values[start : start + block] = x[np.take_along_axis(index, best, axis=1)].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return BootstrapEstimate(float(low), float(high), float(np.median(values)), float(x[np.argmax(ap)]), resamples)
