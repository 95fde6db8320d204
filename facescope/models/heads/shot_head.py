"""The SSD-style head of one shot of a dual-shot detector (DSFD; ASFD's light shared head).

Per level, ``depth`` stacked ``3x3 conv -> ReLU`` layers (a classification tower and a box tower, as
RetinaNet's head) then a 3x3 conv for the class logits and one for the box deltas. ``depth=0`` is the
paper DSFD's head (the predicting convs straight on the feature map); ASFD's searched detectors use a
light head of a few convolutions, shared by both shots.

With ``cosine=True`` the class convs are :class:`CosineConv2d`: they output the cosine between each 3x3
input patch and each class's weight (values in [-1, 1]), the input of a large-margin cosine loss (ASFD's
margin-based classification); the model scores them as ``softmax(s * cos)`` (its ``logit_scale`` ``s``).

State-dict keys: ``conf.<level>`` and ``loc.<level>`` (the predicting convs), and with ``depth > 0``
``cls_tower.<level>.<2 i>`` / ``box_tower.<level>.<2 i>`` (the tower convs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facescope.models.layers import flatten_level, xavier_init_convs


def _tower(in_channels: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` x (3x3 conv -> ReLU), ``in_channels -> width -> ... -> width``."""
    layers: list[nn.Module] = []
    for index in range(depth):
        layers += [nn.Conv2d(in_channels if index == 0 else width, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class CosineConv2d(nn.Conv2d):
    """A bias-free conv whose outputs are cosines: ``<patch, w_c> / (|patch| |w_c|)`` per output channel ``c``.

    The patch norm is the square root of a ones-kernel convolution of the channel-summed squares (the
    same window, stride and padding), so the whole op is convolutions and exports to ONNX as such.

    Shapes: ``Tensor[B, C_in, H, W] -> Tensor[B, C_out, H', W']``, values in [-1, 1].

    Example:
        >>> conv = CosineConv2d(2, 1, kernel_size=1)
        >>> with torch.no_grad():
        ...     _ = conv.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
        >>> conv(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)).item()  # cos = 3 / 5
        0.6000000238418945
    """

    eps = 1e-6

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = F.normalize(self.weight.flatten(1), dim=1, eps=self.eps).view_as(self.weight)
        dots = F.conv2d(x, weight, None, self.stride, self.padding)
        # the patch norm in float32 whatever autocast does: a 3x3 window's summed squares overflow float16 (65504)
        # once the activations' RMS passes sqrt(65504 / (9 C)), about 6 for 200 channels
        with torch.autocast("cuda" if x.device.type == "cuda" else "cpu", enabled=False):  # (meta: shape passes)
            squares = x.float().square().sum(1, keepdim=True)
            window = torch.ones((1, 1, *self.kernel_size), dtype=squares.dtype, device=x.device)
            patch_norm = F.conv2d(squares, window, None, self.stride, self.padding).clamp(min=self.eps**2).sqrt()
            return dots.float() / patch_norm


class ShotHead(nn.Module):
    """One shot's head: per level an optional conv tower, then 3x3 box and class convs.

    Args:
        in_channels: channels of each level's feature map.
        num_anchors: anchors per location (DSFD: 1).
        num_classes: logits per anchor (2: background, face).
        depth: 3x3 conv + ReLU layers before each predicting conv (0 = DSFD's head).
        width: channels of the tower convs (default: the level's own ``in_channels``).
        cosine: the class convs output cosines (:class:`CosineConv2d`) instead of logits.

    Returns (forward):
        ``(cls, box)``: per level ``Tensor[B, N_l, num_classes]`` and ``Tensor[B, N_l, 4]`` with
        ``N_l = H_l * W_l * num_anchors``.

    Example:
        >>> head = ShotHead((16, 32), depth=2, width=8)
        >>> cls, box = head([torch.zeros(1, 16, 4, 4), torch.zeros(1, 32, 2, 2)])
        >>> [tuple(t.shape) for t in cls + box]
        [(1, 16, 2), (1, 4, 2), (1, 16, 4), (1, 4, 4)]
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_anchors: int = 1,
        num_classes: int = 2,
        depth: int = 0,
        width: int | None = None,
        cosine: bool = False,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"head depth must be >= 0, got {depth}")
        self.num_anchors = num_anchors
        self.num_classes = num_classes
        self.depth = depth
        predicting = [c if depth == 0 else (width or c) for c in in_channels]
        if depth > 0:
            self.cls_tower = nn.ModuleList(_tower(c, width or c, depth) for c in in_channels)
            self.box_tower = nn.ModuleList(_tower(c, width or c, depth) for c in in_channels)
        self.loc = nn.ModuleList(nn.Conv2d(c, num_anchors * 4, kernel_size=3, padding=1) for c in predicting)
        conf = CosineConv2d if cosine else nn.Conv2d
        self.conf = nn.ModuleList(conf(c, num_anchors * num_classes, kernel_size=3, padding=1) for c in predicting)
        xavier_init_convs(self)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        if len(features) != len(self.loc):
            raise ValueError(f"ShotHead has {len(self.loc)} levels but got {len(features)} feature maps")
        cls_inputs, box_inputs = features, features
        if self.depth > 0:
            cls_inputs = [tower(f) for tower, f in zip(self.cls_tower, features)]
            box_inputs = [tower(f) for tower, f in zip(self.box_tower, features)]
        cls = [flatten_level(conf(f), self.num_classes) for f, conf in zip(cls_inputs, self.conf)]
        box = [flatten_level(loc(f), 4) for f, loc in zip(box_inputs, self.loc)]
        return cls, box
