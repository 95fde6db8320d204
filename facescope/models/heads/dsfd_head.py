"""DSFD prediction heads.

* :class:`ShotHead`: the paper's SSD-style head of one shot: per level a 3x3 conv for the box
  deltas and one for the two-class logits (``loc.<l>``, ``conf.<l>``).
* :class:`DeepHeadModule`: the official release's per-level head (three 3x3 convs with ReLU and
  a 1x1 output conv; attribute names ``conv1`` .. ``conv4`` as in ``WIDERFace_DSFD_RES152.pth``).
* :func:`max_in_out`: the release's max-in-out classification (several background or face
  channels reduced by a maximum).

All heads return ``Tensor[B, H*W*A, k]`` rows ordered (row, column, anchor), the order of the
facescope prior generators.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from facescope.models.heads.retinaface_head import flatten_anchors


def xavier_init_convs(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases on every conv (the DSFD references' init of new layers)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ShotHead(nn.Module):
    """One shot's SSD-style head: 3x3 box and class convs on every level.

    Args:
        in_channels: channels of each level's feature map.
        num_anchors: anchors per location (DSFD: 1).
        num_classes: logits per anchor (2: background, face).

    Returns (forward):
        ``(cls, box)``: per level ``Tensor[B, N_l, num_classes]`` and ``Tensor[B, N_l, 4]`` with
        ``N_l = H_l * W_l * num_anchors``.
    """

    def __init__(self, in_channels: Sequence[int], num_anchors: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_classes = num_classes
        self.loc = nn.ModuleList(nn.Conv2d(c, num_anchors * 4, kernel_size=3, padding=1) for c in in_channels)
        self.conf = nn.ModuleList(
            nn.Conv2d(c, num_anchors * num_classes, kernel_size=3, padding=1) for c in in_channels
        )
        xavier_init_convs(self)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        if len(features) != len(self.loc):
            raise ValueError(f"ShotHead has {len(self.loc)} levels but got {len(features)} feature maps")
        cls = [flatten_anchors(conf(f), self.num_classes) for f, conf in zip(features, self.conf)]
        box = [flatten_anchors(loc(f), 4) for f, loc in zip(features, self.loc)]
        return cls, box


class DeepHeadModule(nn.Module):
    """The official release's head: ``3x3 -> ReLU -> 3x3 -> ReLU -> 3x3 -> ReLU -> 1x1``.

    The hidden width is ``min(in_channels, 256)``; every conv has a bias.

    Shapes: ``Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = min(in_channels, 256)
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(mid, out_channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.conv4(x)


def max_in_out(logits: Tensor, max_out_background: bool) -> Tensor:
    """Max-in-out face logits of the release: ``Tensor[B, C>=4, H, W] -> Tensor[B, 2, H, W]``.

    Channels 0..2 are three candidates of one class and channel 3 is the other class. On the
    lowest level (``max_out_background=True``) the three are background candidates (many small
    negatives there), elsewhere they are face candidates. The result is ordered (background, face);
    channels 4 and up (the release's head/body parts) are not part of the face output.
    """
    if logits.shape[1] < 4:
        raise ValueError(f"max-in-out needs at least 4 channels, got {logits.shape[1]}")
    pooled = logits[:, 0:3].amax(dim=1, keepdim=True)
    single = logits[:, 3:4]
    return torch.cat([pooled, single] if max_out_background else [single, pooled], dim=1)
