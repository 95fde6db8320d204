"""MobileNetV1 backbone as used by SCRFD (``mmdet/models/backbones/mobilenet.py`` of insightface)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from facescope.models.layers import conv_bn_act, conv_dw, init_conv_bn


class MobileNetV1(nn.Module):
    """SCRFD's MobileNetV1: a stride-2 stem then four stages of depthwise-separable blocks.

    Args:
        stage_planes: six channel counts ``p0..p5``; the stem produces ``p1`` at stride 2 and stage
            ``i`` (1..4) produces ``p_{i+1}`` at stride ``2**(i+1)``.
        stage_blocks: number of blocks in the four stages; the first block of each stage has stride 2.

    Returns (forward):
        Feature maps at strides 4, 8, 16, 32 with ``out_channels = (p2, p3, p4, p5)``.

    Example:
        >>> net = MobileNetV1((16, 16, 40, 72, 152, 288), (2, 3, 2, 6))
        >>> [f.shape[1] for f in net(torch.zeros(1, 3, 64, 64))]
        [40, 72, 152, 288]
    """

    def __init__(self, stage_planes: Sequence[int], stage_blocks: Sequence[int]) -> None:
        super().__init__()
        if len(stage_planes) != 6 or len(stage_blocks) != 4:
            raise ValueError("MobileNetV1 needs 6 stage_planes and 4 stage_blocks")
        p = list(stage_planes)
        self.stem = nn.Sequential(conv_bn_act(3, p[0], stride=2), conv_dw(p[0], p[1], stride=1))
        self.out_channels = tuple(p[2:])
        for i, num_blocks in enumerate(stage_blocks, start=1):
            blocks = [conv_dw(p[i], p[i + 1], stride=2)]
            blocks += [conv_dw(p[i + 1], p[i + 1], stride=1) for _ in range(num_blocks - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal convs, unit BN (training from scratch, as the official code)."""
        init_conv_bn(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            features.append(x)
        return features
