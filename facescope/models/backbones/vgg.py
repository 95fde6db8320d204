"""VGG-16 as the S3FD / PyramidBox / DSFD detector body, and the L2Norm scale layer of its taps.

``features`` keeps torchvision's ``vgg16().features`` indices (``features.0.weight`` ...
``features.28.bias``; index 30 is pool5), so an ImageNet state dict from torchvision loads into
it with the classifier dropped. After pool5 the classifier's fully connected layers are replaced,
as in SSD, by convolutions ``fc6`` (3x3, dilation 3, 512 -> 1024) and ``fc7`` (1x1, 1024 -> 1024):
:class:`ReducedFC`, kept out of the body because they have no ImageNet counterpart in torchvision
(they start from Xavier initialisation).

Every max-pool uses ``ceil_mode=True`` so that a level of stride ``s`` has ``ceil(H/s) x ceil(W/s)``
cells on any input, the grid every facescope prior generator assumes. The DSFD references pool
with floor rounding except before conv4 ("C" pool); on sides that are multiples of 32 (the 640
training crops) both give the same maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# torchvision vgg16 "D" configuration: channels of each 3x3 conv, "M" a 2x2/2 max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"
)  # fmt: skip
# ``features`` index of the ReLU ending each tapped block: relu3_3, relu4_3, relu5_3.
_TAP_INDICES = (15, 22, 29)


def _vgg16_features() -> nn.Sequential:
    """Conv/ReLU/pool stack with torchvision's indices (31 modules, the last one pool5)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = item
    return nn.Sequential(*layers)


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learnable per-channel scale (ParseNet, SSD's conv4_3 norm).

    ``y[:, c] = weight[c] * x[:, c] / (||x||_2 over channels + eps)``; ``weight`` starts at ``scale``.

    Args:
        channels: number of input channels ``C``.
        scale: initial value of every channel's scale (DSFD: 10, 8, 5 on conv3_3, conv4_3, conv5_3).
        eps: added to the norm (1e-10 as in the references).

    Shapes: ``Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.
    """

    def __init__(self, channels: int, scale: float, eps: float = 1e-10) -> None:
        super().__init__()
        self.initial_scale = scale
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.initial_scale)

    def forward(self, x: Tensor) -> Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


class VGG16Body(nn.Module):
    """VGG-16 ``features`` returning conv3_3, conv4_3, conv5_3 and pool5 (strides 4, 8, 16, 32).

    Only torchvision's ``features`` live here, so an ImageNet ``vgg16`` state dict loads into it
    exactly (its ``classifier`` dropped); the SSD "reduced fc" layers that turn pool5 into fc7 are
    :class:`ReducedFC`, a detector part with no ImageNet counterpart.

    Returns (forward):
        ``[Tensor[B, 256, ceil(H/4), ceil(W/4)], Tensor[B, 512, ./8], Tensor[B, 512, ./16],
        Tensor[B, 512, ./32]]`` (after their ReLUs / pool5, before any L2Norm); ``out_channels``
        lists the widths.

    Example:
        >>> body = VGG16Body()
        >>> [tuple(f.shape) for f in body(torch.zeros(1, 3, 64, 96))]
        [(1, 256, 16, 24), (1, 512, 8, 12), (1, 512, 4, 6), (1, 512, 2, 3)]
    """

    out_channels = (256, 512, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg16_features()

    def forward(self, x: Tensor) -> list[Tensor]:
        taps: list[Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAP_INDICES:
                taps.append(x)
        taps.append(x)  # pool5
        return taps


class ReducedFC(nn.Module):
    """SSD's "reduced fc": ``fc6`` (3x3, dilation 3, 512 -> 1024) and ``fc7`` (1x1, 1024 -> 1024), ReLU after
    each; pool5 -> fc7 at stride 32. Xavier-initialised (no torchvision counterpart).

    Shapes: ``Tensor[B, 512, H, W] -> Tensor[B, 1024, H, W]``.
    """

    out_channels = 1024

    def __init__(self) -> None:
        super().__init__()
        # A dilated fc6 keeps stride 32 and widens the receptive field.
        self.fc6 = nn.Conv2d(512, 1024, kernel_size=3, padding=3, dilation=3)
        self.fc7 = nn.Conv2d(1024, 1024, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.fc6, self.fc7):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.fc7(self.relu(self.fc6(x))))
