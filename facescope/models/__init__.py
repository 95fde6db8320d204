"""Model registry, builders, pretrained weights.

The registry (:mod:`facescope.models.registry`) and its catalogue (:mod:`facescope.models.catalog`)
import without torch; the model classes and :func:`create_model`'s builders need it. Attributes
are imported on first use.
"""

from __future__ import annotations

from facescope._lazy import lazy_getattr

_LAZY_ATTRIBUTES = {
    "DenseFaceDetector": "facescope.models.base",
    "DenseOutputs": "facescope.models.base",
    "DensePredictions": "facescope.models.base",
    "DualShotDetector": "facescope.models.dual_shot",
    "ModelEntry": "facescope.models.registry",
    "create_model": "facescope.models.registry",
    "get_model_entry": "facescope.models.registry",
    "list_models": "facescope.models.registry",
    "register_model": "facescope.models.registry",
    "WeightSpec": "facescope.models.spec",
}


__getattr__ = lazy_getattr("facescope.models", _LAZY_ATTRIBUTES)


__all__ = sorted(_LAZY_ATTRIBUTES)
