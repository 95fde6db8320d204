"""Feature pyramid necks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facescope.models.layers import ConvModule, conv_bn


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


# ---------------------------------------------------------------------------------------------
# RetinaFace (Pytorch_Retinaface port and the paper's pyramid)
# ---------------------------------------------------------------------------------------------


def _retinaface_slope(out_channels: int) -> float:
    """Pytorch_Retinaface uses LeakyReLU(0.1) for narrow (<= 64 channel) necks, else slope 0 (ReLU)."""
    return 0.1 if out_channels <= 64 else 0.0


class RetinaFaceFPN(nn.Module):
    """The 3-level FPN of Pytorch_Retinaface (``models/net.py`` ``FPN``), official key names.

    ``output{1,2,3}`` are 1x1 conv-BN-LeakyReLU laterals on C3..C5; top-down, each level adds the
    nearest-upsampled (to the exact size) level above and is smoothed by ``merge{1,2}`` (3x3).

    Args:
        in_channels: channels of C3, C4, C5.
        out_channels: 64 for MobileNet-0.25, 256 for ResNet-50.

    Returns (forward):
        ``[P3, P4, P5]``, each ``Tensor[B, out_channels, H_l, W_l]``.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"RetinaFaceFPN takes 3 levels, got {len(in_channels)}")
        slope = _retinaface_slope(out_channels)
        self.output1 = conv_bn(in_channels[0], out_channels, 1, negative_slope=slope)
        self.output2 = conv_bn(in_channels[1], out_channels, 1, negative_slope=slope)
        self.output3 = conv_bn(in_channels[2], out_channels, 1, negative_slope=slope)
        self.merge1 = conv_bn(out_channels, out_channels, 3, negative_slope=slope)
        self.merge2 = conv_bn(out_channels, out_channels, 3, negative_slope=slope)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        c3, c4, c5 = features
        p5 = self.output3(c5)
        p4 = self.merge2(self.output2(c4) + F.interpolate(p5, size=c4.shape[2:], mode="nearest"))
        p3 = self.merge1(self.output1(c3) + F.interpolate(p4, size=c3.shape[2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """SSH context module as in Pytorch_Retinaface (official key names, note ``conv7x7_3``).

    Three branches with 3x3, two stacked 3x3 (5x5 field) and three stacked 3x3 (7x7 field) convs
    producing ``out/2``, ``out/4`` and ``out/4`` channels; the branch ends have no activation, the
    concatenation goes through a ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels (a multiple of 4).
        deformable: replace every 3x3 conv with a deformable one (the paper's variant).
    """

    def __init__(self, in_channels: int, out_channels: int, deformable: bool = False) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"SSH out_channels must be a multiple of 4, got {out_channels}")
        slope = _retinaface_slope(out_channels)
        quarter = out_channels // 4
        self.conv3X3 = conv_bn(in_channels, out_channels // 2, activation=False, deformable=deformable)
        self.conv5X5_1 = conv_bn(in_channels, quarter, negative_slope=slope, deformable=deformable)
        self.conv5X5_2 = conv_bn(quarter, quarter, activation=False, deformable=deformable)
        self.conv7X7_2 = conv_bn(quarter, quarter, negative_slope=slope, deformable=deformable)
        self.conv7x7_3 = conv_bn(quarter, quarter, activation=False, deformable=deformable)

    def forward(self, x: Tensor) -> Tensor:
        branch3 = self.conv3X3(x)
        field5 = self.conv5X5_1(x)
        branch5 = self.conv5X5_2(field5)
        branch7 = self.conv7x7_3(self.conv7X7_2(field5))
        return F.relu(torch.cat([branch3, branch5, branch7], dim=1))


class RetinaFacePaperFPN(nn.Module):
    """The paper's pyramid: P2..P5 from C2..C5 with top-down and lateral connections, P6 from C5.

    Laterals are 1x1 conv-BN-ReLU; after each top-down addition a 3x3 conv-BN-ReLU (deformable when
    ``deformable``) smooths P2..P4; P6 is a plain 3x3 stride-2 conv on C5, Xavier-initialised.

    Args:
        in_channels: channels of C2, C3, C4, C5.
        out_channels: 256 in the paper.
        deformable: deformable 3x3 convs in the lateral connections.

    Returns (forward):
        ``[P2, P3, P4, P5, P6]`` at strides 4..64.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, deformable: bool = False) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"RetinaFacePaperFPN takes C2..C5 (4 levels), got {len(in_channels)}")
        self.laterals = nn.ModuleList(conv_bn(c, out_channels, 1) for c in in_channels)
        self.merges = nn.ModuleList(conv_bn(out_channels, out_channels, 3, deformable=deformable) for _ in range(3))
        self.p6 = nn.Conv2d(in_channels[3], out_channels, 3, stride=2, padding=1)
        nn.init.xavier_uniform_(self.p6.weight)
        nn.init.zeros_(self.p6.bias)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        laterals = [conv(c) for conv, c in zip(self.laterals, features)]
        pyramid = [laterals[3]]
        for i in (2, 1, 0):
            merged = laterals[i] + F.interpolate(pyramid[0], size=laterals[i].shape[2:], mode="nearest")
            pyramid.insert(0, self.merges[i](merged))
        return pyramid + [self.p6(features[3])]
