"""Registry-wide test parameters: every registered model, the heavy ones slow-marked.

A model at or above ``HEAVY_GMACS`` at 640x480 takes seconds to build, run and back-propagate on a CPU;
registry-wide tests still cover it under ``pytest -m slow``. ``tests/models/test_registry_training.py`` keeps the
list honest: a registered model outside it that reaches the threshold (counted on the meta device) fails there.
"""

from __future__ import annotations

import pytest

from facescope.models import list_models

HEAVY_GMACS = 5.0
HEAVY = frozenset({
    "asfd_d2",
    "asfd_d3",
    "asfd_d4",
    "asfd_d5",
    "asfd_d6",
    "asfd_supernet",
    "dsfd_official",
    "dsfd_r101",
    "dsfd_r152",
    "dsfd_r50",
    "dsfd_vgg16",
    "retinaface_paper_r50",
    "retinaface_paper_r152",
    "retinaface_r50",
    "scrfd_10g",
    "scrfd_10g_kps",
    "scrfd_34g",
    "scrfd_base_10g",
    "scrfd_base_34g",
    "shf_vgg16",
})  # fmt: skip


def every_model(names: list[str] | None = None) -> list:
    """``pytest.param`` per registered model (or per name given), heavy ones marked slow."""
    names = list_models() if names is None else names
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]
