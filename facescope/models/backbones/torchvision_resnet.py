"""torchvision ResNet (v1.5: stride on the 3x3 conv) as a multi-level detector body.

Mirrors torchvision's ``IntermediateLayerGetter``: the children of ``torchvision.models.resnetXX``
are kept up to the last returned stage (the classifier ``avgpool``/``fc`` is dropped), so state-dict
keys are torchvision's own (``conv1.weight``, ``bn1.running_mean``, ``layer1.0.downsample.0.weight``)
and ImageNet files from torchvision load with the classifier removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn

_DEPTHS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}
_STAGES = ("layer1", "layer2", "layer3", "layer4")


class TorchvisionResNetBody(nn.Module):
    """ResNet stem and stages returning the outputs of ``return_stages``.

    Args:
        depth: 18, 34, 50, 101 or 152.
        return_stages: stage names to return, shallow to deep, e.g. ``("layer2", "layer3", "layer4")``
            for C3..C5 (strides 8..32) or all four for C2..C5.
        zero_init_residual: start every residual branch's last BatchNorm at zero gain (torchvision's
            option), so a randomly initialised network's activations stay at the scale of its stem
            however deep it is; weights loaded later replace these values.

    Returns (forward):
        One ``Tensor[B, C_i, ceil(H/s_i), ceil(W/s_i)]`` per returned stage; ``out_channels`` lists C_i.

    Example:
        >>> body = TorchvisionResNetBody(50, ("layer2", "layer3", "layer4"))
        >>> body.out_channels
        (512, 1024, 2048)
    """

    def __init__(self, depth: int, return_stages: Sequence[str], zero_init_residual: bool = False) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(_DEPTHS)}, got {depth}")
        unknown = [s for s in return_stages if s not in _STAGES]
        if unknown or not return_stages:
            raise ValueError(f"return_stages must be a non-empty subset of {_STAGES}, got {tuple(return_stages)}")
        self.return_stages = tuple(s for s in _STAGES if s in return_stages)
        network = getattr(torchvision.models, _DEPTHS[depth])(weights=None, zero_init_residual=zero_init_residual)
        last = self.return_stages[-1]
        for name, child in network.named_children():
            self.add_module(name, child)
            if name == last:
                break
        expansion = 4 if depth >= 50 else 1
        widths = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
        self.out_channels = tuple(widths[s] * expansion for s in self.return_stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for name, child in self.named_children():
            x = child(x)
            if name in self.return_stages:
                features.append(x)
        return features
