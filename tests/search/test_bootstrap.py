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
    # the untrained rows are dropped before sampling: the same estimate as the trained rows alone
    assert empirical_bootstrap(x, ap, resamples=500, seed=7) == empirical_bootstrap(x[10:], ap[10:], resamples=500, seed=7)


def test_bad_input_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"same \[N\] shape"):
        empirical_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2 models"):
        empirical_bootstrap(np.zeros(2), np.array([1.0, np.nan]))


def test_recommendation_prefers_a_member_inside_the_intervals_and_says_when_none_is():
    from facescope.search.scrfd_cr.analysis import Row, recommend
    from facescope.search.scrfd_cr.bootstrap import BootstrapEstimate
    from facescope.search.scrfd_cr.space import CRArchitecture

    arch = CRArchitecture(8, "basic", (1, 1, 1, 1), (8, 8, 8, 8), 8, 1, 8)
    rows = [Row(name, arch, 0.5, {"stem": stem}, {"hard": hard}, None, None)
            for name, stem, hard in (("a", 0.9, 0.30), ("b", 0.3, 0.20), ("c", 0.35, 0.10))]  # fmt: skip
    interval = {"stem": BootstrapEstimate(0.2, 0.4, 0.3, 0.9, 100)}
    assert [(row.trial_id, inside) for row, inside in [recommend(rows, interval, ("stem",))]] == [("b", True)]
    narrow = {"stem": BootstrapEstimate(0.5, 0.6, 0.55, 0.9, 100)}
    assert [(row.trial_id, inside) for row, inside in [recommend(rows, narrow, ("stem",))]] == [("a", False)]
