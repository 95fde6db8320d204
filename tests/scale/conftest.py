"""One local Ray instance per test module that asks for it (start-up costs seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """A real in-process Ray instance: 2 CPUs (one actor and one decoding slot), a small object store."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    import ray.data

    ray.init(num_cpus=2, object_store_memory=256 << 20, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()

