"""Model registry, builders, pretrained weights.

The registry (:mod:`facescope.models.registry`) and its catalogue (:mod:`facescope.models.catalog`)
import without torch; the model classes and :func:`create_model`'s builders need it. Attributes
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_ATTRIBUTES = {
    "DenseFaceDetector": "facescope.models.base",
    "DenseOutputs": "facescope.models.base",
    "DensePredictions": "facescope.models.base",
    "ModelEntry": "facescope.models.registry",
    "create_model": "facescope.models.registry",
    "get_model_entry": "facescope.models.registry",
    "list_models": "facescope.models.registry",
    "register_model": "facescope.models.registry",
    "WeightSpec": "facescope.models.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module 'facescope.models' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_LAZY_ATTRIBUTES)
