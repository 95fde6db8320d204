"""Backbones. Each returns a list of feature maps (shallow to deep) and exposes ``out_channels``."""

from facescope.models.backbones.mobilenet import MobileNetV1
from facescope.models.backbones.resnet import ResNetV1e

__all__ = ["MobileNetV1", "ResNetV1e"]
