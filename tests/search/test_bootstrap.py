"""The empirical bootstrap recovers a known optimum of a constructed population."""

from __future__ import annotations

import numpy as np
import pytest

from facescope.search.scrfd_cr.bootstrap import empirical_bootstrap


def _population(optimum: float, noise: float, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size)
    return x, 0.8 - 2.0 * (x - optimum) ** 2 + rng.normal(0.0, noise, size)


@pytest.mark.parametrize("optimum", [0.2, 0.55, 0.8])
def test_recovers_the_optimum_of_a_noisy_population(optimum: float):
    x, ap = _population(optimum, noise=0.01, size=320, seed=1)
    estimate = empirical_bootstrap(x, ap, resamples=3000, top_fraction=0.05)
    assert estimate.contains(optimum)
    assert estimate.high - estimate.low < 0.2
    assert abs(estimate.median - optimum) < 0.05


def test_a_noiseless_single_best_interval_shrinks_to_the_population_best():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    ap = np.array([0.1, 0.2, 0.9, 0.2, 0.1])
    estimate = empirical_bootstrap(x, ap, resamples=4000, confidence=0.5)
    # A resample misses model 0.3 with probability (4/5)^5 = 0.328 and then its best is 0.2 or 0.4,
    # so the median and the central 50 % interval sit exactly on 0.3.
    assert (estimate.low, estimate.median, estimate.high, estimate.best) == (0.3, 0.3, 0.3, 0.3)


def test_is_deterministic_for_a_seed_and_drops_untrained_models():
    x, ap = _population(0.4, 0.02, 100, seed=2)
    ap[:10] = np.nan  # failed trials carry no accuracy
    assert empirical_bootstrap(x, ap, resamples=500, seed=7) == empirical_bootstrap(x, ap, resamples=500, seed=7)


def test_bad_input_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"same \[N\] shape"):
        empirical_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 models"):
        empirical_bootstrap(np.zeros(2), np.array([1.0, np.nan]))
