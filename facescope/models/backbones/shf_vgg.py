"""VGG16 conv1_1 ... conv5_3 as in Caffe's ImageNet VGG16, the body of SHF.

Attribute names are the Caffe layer names (``conv4_3.weight``), so a converted Caffe VGG16 model
loads key for key; :data:`TORCHVISION_VGG16_FEATURES` maps torchvision's ``features.<i>`` keys onto
them. Pooling is Caffe's (2x2, stride 2, ceil), which equals floor pooling on the inputs SHF
accepts (sides multiples of 16).
"""

from __future__ import annotations

from torch import Tensor, nn

# (name, in_channels, out_channels) of every 3x3 / pad 1 convolution, in forward order.
VGG16_CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
)
# A 2x2/2 max pool follows these layers (pool1 ... pool4; VGG's pool5 is not part of SHF).
_POOL_AFTER = frozenset({"conv1_2", "conv2_2", "conv3_3", "conv4_3"})

# torchvision ``vgg16().features`` index of every conv (ReLUs and pools sit in between).
TORCHVISION_VGG16_FEATURES: dict[str, int] = {
    "conv1_1": 0,
    "conv1_2": 2,
    "conv2_1": 5,
    "conv2_2": 7,
    "conv3_1": 10,
    "conv3_2": 12,
    "conv3_3": 14,
    "conv4_1": 17,
    "conv4_2": 19,
    "conv4_3": 21,
    "conv5_1": 24,
    "conv5_2": 26,
    "conv5_3": 28,
}


class CaffeVGG16Body(nn.Module):
    """VGG16 without pool5 and the classifier; returns conv4_3 (stride 8) and conv5_3 (stride 16).

    Every conv is followed by a ReLU; the two outputs are post-ReLU. SHF freezes conv1_x and conv2_x
    in training; that is a parameter-group rule of the recipe, not a property of this module.

    Example:
        >>> import torch
        >>> c4, c5 = CaffeVGG16Body()(torch.zeros(1, 3, 64, 96))
        >>> tuple(c4.shape), tuple(c5.shape)
        ((1, 512, 8, 12), (1, 512, 4, 6))
    """

    out_channels = (512, 512)
    strides = (8, 16)

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout in VGG16_CONVS:
            self.add_module(name, nn.Conv2d(cin, cout, 3, padding=1))
        # One ReLU / pool module each, applied after every conv / pooled stage: stateless, and the
        # complexity counter's hooks fire on every call.
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, images: Tensor) -> list[Tensor]:
        """``Tensor[B, 3, H, W]`` -> [conv4_3 ``[B, 512, H/8, W/8]``, conv5_3 ``[B, 512, H/16, W/16]``]."""
        x = images
        conv4_3 = x
        for name, _, _ in VGG16_CONVS:
            x = self.relu(getattr(self, name)(x))
            if name == "conv4_3":
                conv4_3 = x
            if name in _POOL_AFTER:
                x = self.pool(x)
        return [conv4_3, x]


def torchvision_vgg16_to_caffe_names(state_dict: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Rename a torchvision ``vgg16`` state dict's ``features.<i>.weight/bias`` to ``<prefix>conv4_3.weight`` ...

    Keys of the classifier and of pool5 onwards are dropped. Note that torchvision's ImageNet weights
    expect RGB inputs in [0, 1] normalised by the ImageNet mean/std, not Caffe's BGR - mean: they
    are a starting point for fine-tuning, not a drop-in for the Caffe VGG16 that SHF was trained from.
    """
    renamed: dict[str, Tensor] = {}
    for name, index in TORCHVISION_VGG16_FEATURES.items():
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key not in state_dict:
                raise KeyError(f"torchvision VGG16 state dict has no '{key}' (needed for {name})")
            renamed[f"{prefix}{name}.{kind}"] = state_dict[key]
    return renamed


__all__ = ["VGG16_CONVS", "TORCHVISION_VGG16_FEATURES", "CaffeVGG16Body", "torchvision_vgg16_to_caffe_names"]
