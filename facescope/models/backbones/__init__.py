"""Backbones. Each returns a list of feature maps (shallow to deep) and exposes ``out_channels``."""

from facescope.models.backbones.mobilenet import MobileNetV1
from facescope.models.backbones.resnet import ResNetV1e
from facescope.models.backbones.pretrain import load_backbone_pretrain
from facescope.models.backbones.retinaface_mobilenet import MobileNetV1Taps, RetinaFaceMobileNetV1
from facescope.models.backbones.torchvision_resnet import TorchvisionResNetBody

__all__ = [
    "MobileNetV1",
    "MobileNetV1Taps",
    "ResNetV1e",
    "RetinaFaceMobileNetV1",
    "TorchvisionResNetBody",
    "load_backbone_pretrain",
]
