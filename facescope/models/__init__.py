"""Model registry, builders, pretrained weights."""

from facescope.models.base import DenseFaceDetector, DenseOutputs, DensePredictions
from facescope.models.registry import ModelEntry, create_model, get_model_entry, list_models, register_model
from facescope.models.weights import WeightSpec

__all__ = [
    "DenseFaceDetector",
    "DenseOutputs",
    "DensePredictions",
    "ModelEntry",
    "WeightSpec",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
]
