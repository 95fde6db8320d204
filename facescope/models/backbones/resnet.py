"""ResNetV1e (deep stem, average-pool shortcut, 2x2 max-pool) as configured by SCRFD in mmdet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from facescope.models.layers import init_conv_bn


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (expansion 1); the stride is on ``conv1``."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, "pytorch" style) -> 1x1 (x4 channels) with a residual connection."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNetV1e(nn.Module):
    """mmdet ``ResNetV1e`` (``deep_stem``, ``avg_down``, ``no_pool33``) with free per-stage widths.

    Args:
        base_channels: stem output channels (the stem's first two convs have half of it).
        block: ``"basic"`` or ``"bottleneck"``.
        stage_blocks: blocks in each of the four stages.
        stage_planes: planes of each stage (output channels are ``planes * expansion``).

    Returns (forward):
        Feature maps at strides 4, 8, 16, 32.

    Example:
        >>> net = ResNetV1e(24, "basic", (3, 5, 3, 2), (24, 48, 48, 80))
        >>> net.out_channels
        (24, 48, 48, 80)
    """

    def __init__(
        self,
        base_channels: int,
        block: Literal["basic", "bottleneck"],
        stage_blocks: Sequence[int],
        stage_planes: Sequence[int],
    ) -> None:
        super().__init__()
        block_cls = BLOCKS[block]
        half = base_channels // 2
        self.stem = nn.Sequential(
            _conv3x3(3, half, 2), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            _conv3x3(half, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            _conv3x3(half, base_channels), nn.BatchNorm2d(base_channels), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        in_channels = base_channels
        out_channels = []
        for i, (num_blocks, planes) in enumerate(zip(stage_blocks, stage_planes), start=1):
            stride = 1 if i == 1 else 2
            self.add_module(f"layer{i}", _res_layer(block_cls, in_channels, planes, num_blocks, stride))
            in_channels = planes * block_cls.expansion
            out_channels.append(in_channels)
        self.out_channels = tuple(out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming convs, unit norms, zero-initialised last norm of each residual block."""
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_norm().weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.stem(x))
        features = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            features.append(x)
        return features


def _res_layer(
    block_cls: type[BasicBlock] | type[Bottleneck], in_channels: int, planes: int, num_blocks: int, stride: int
) -> nn.Sequential:
    """A stage; the shortcut of its first block is AvgPool(stride) -> 1x1 conv -> BN when shapes change."""
    out_channels = planes * block_cls.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    blocks = [block_cls(in_channels, planes, stride, downsample)]
    blocks += [block_cls(out_channels, planes, 1, None) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
