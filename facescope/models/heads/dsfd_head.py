"""The DSFD release's prediction heads (the paper models' head is the generic
:class:`~facescope.models.heads.shot_head.ShotHead`).

* :class:`DeepHeadModule`: the official release's per-level head (three 3x3 convs with ReLU and
  a 1x1 output conv; attribute names ``conv1`` .. ``conv4`` as in ``WIDERFace_DSFD_RES152.pth``).
* :func:`max_in_out`: the release's max-in-out classification (several background or face
  channels reduced by a maximum).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
