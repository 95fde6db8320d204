"""Feature pyramid necks."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from facescope.models.layers import ConvModule


class PAFPN(nn.Module):
    """Path-aggregation FPN (mmdet ``PAFPN``, no norm, no activation, biased convs).

    Uses the backbone levels ``start_level..`` only. Top-down: ``L[i-1] += up(L[i])`` (nearest,
    to the exact size of ``L[i-1]``); ``I[i] = fpn_conv[i](L[i])``; bottom-up, cumulatively:
    ``I[i+1] += downsample_conv[i](I[i])``; outputs ``I[0], pafpn_conv[0](I[1]), ...``.

    Args:
        in_channels: channels of every backbone level (including the unused ones).
        out_channels: channels of every output level.
        start_level: first backbone level used.

    Example:
        >>> neck = PAFPN((40, 72, 152, 288), 16)
        >>> feats = [torch.zeros(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((40, 72, 152, 288))]
        >>> [f.shape[-1] for f in neck(feats)]
        [8, 4, 2]
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, start_level: int = 1) -> None:
        super().__init__()
        self.start_level = start_level
        used = list(in_channels)[start_level:]
        num_levels = len(used)
        self.out_channels = out_channels
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, activation=False) for c in used)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, activation=False) for _ in range(num_levels)
        )
        self.downsample_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, stride=2, padding=1, activation=False)
            for _ in range(num_levels - 1)
        )
        self.pafpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, activation=False) for _ in range(num_levels - 1)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        inputs = list(features)[self.start_level :]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        inter = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        for i, conv in enumerate(self.downsample_convs):
            inter[i + 1] = inter[i + 1] + conv(inter[i])
        return [inter[0]] + [conv(x) for conv, x in zip(self.pafpn_convs, inter[1:])]
