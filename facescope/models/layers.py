"""Small reusable blocks. Attribute names follow mmcv / the official repos so checkpoints load as-is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class NormSpec:
    """Normalisation of a conv block: ``"bn"``, ``"gn"`` (with ``num_groups``) or ``"none"``."""

    kind: Literal["bn", "gn", "none"] = "bn"
    num_groups: int = 16

    def build(self, channels: int) -> nn.Module:
        if self.kind == "bn":
            return nn.BatchNorm2d(channels)
        if self.kind == "gn":
            return nn.GroupNorm(self.num_groups, channels)
        raise ValueError("NormSpec('none') builds no layer")


BN = NormSpec("bn")
NO_NORM = NormSpec("none")


def GN(num_groups: int) -> NormSpec:  # noqa: N802 - reads like the config it mirrors
    """Group normalisation with ``num_groups`` groups."""
    return NormSpec("gn", num_groups)


class ConvModule(nn.Module):
    """Conv -> norm -> ReLU, named like mmcv's ``ConvModule`` (``conv``, ``bn``/``gn``).

    The conv has a bias exactly when there is no norm layer (mmcv ``bias='auto'``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        norm: NormSpec = NO_NORM,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.norm_name = norm.kind if norm.kind != "none" else None
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=self.norm_name is None
        )
        if self.norm_name is not None:
            self.add_module(self.norm_name, norm.build(out_channels))
        self.activate = nn.ReLU(inplace=True) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        return self.activate(x)


class DepthwiseSeparableConvModule(nn.Module):
    """Depthwise 3x3 ConvModule then pointwise 1x1 ConvModule (mmcv naming)."""

    def __init__(self, in_channels: int, out_channels: int, norm: NormSpec) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, 3, padding=1, groups=in_channels, norm=norm)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class Scale(nn.Module):
    """A learnable scalar multiplier (mmcv ``Scale``), stored as a 0-dim parameter ``scale``."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(value, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) conv weights and unit/zero BatchNorm affine: from-scratch backbone init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def xavier_init_convs(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases on every conv (the SSD / DSFD references' init of new layers)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def flatten_level(x: Tensor, values_per_anchor: int) -> Tensor:
    """A head's conv output of one level as rows: ``Tensor[B, A*k, H, W] -> Tensor[B, H*W*A, k]``.

    Rows are ordered (row, column, anchor), the order of :class:`~facescope.ops.anchors.AnchorGenerator`.

    Example:
        >>> flatten_level(torch.arange(8.0).view(1, 4, 1, 2), 2).tolist()
        [[[0.0, 2.0], [4.0, 6.0], [1.0, 3.0], [5.0, 7.0]]]
    """
    batch = x.shape[0]
    # (B, A*k, H, W) -> (B, H, W, A*k) -> (B, H*W*A, k)
    return x.permute(0, 2, 3, 1).reshape(batch, -1, values_per_anchor)


class PerLevel(nn.ModuleList):
    """One module per pyramid level, applied level by level: ``[x_0 .. x_L] -> [m_0(x_0) .. m_L(x_L)]``.

    A :class:`~torch.nn.ModuleList` (state-dict keys ``<index>.<...>``) with a forward.

    Example:
        >>> PerLevel([nn.Identity(), nn.ReLU()])([torch.ones(1), -torch.ones(1)])
        [tensor([1.]), tensor([0.])]
    """

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:  # type: ignore[override]
        if len(features) != len(self):
            raise ValueError(f"{len(self)} per-level modules but {len(features)} feature maps")
        return [module(x) for module, x in zip(self, features)]


def conv_bn_act(
    in_channels: int, out_channels: int, stride: int, kernel_size: int = 3, negative_slope: float | None = None
) -> nn.Sequential:
    """``Sequential(Conv kxk no-bias, BN, ReLU or LeakyReLU)`` (keys ``0``, ``1``)."""
    act: nn.Module = nn.ReLU(inplace=True) if negative_slope is None else nn.LeakyReLU(negative_slope, inplace=True)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        act,
    )


def conv_dw(in_channels: int, out_channels: int, stride: int, negative_slope: float | None = None) -> nn.Sequential:
    """MobileNetV1 block: depthwise 3x3 + BN + act, pointwise 1x1 + BN + act (keys ``0,1,3,4``)."""

    def act() -> nn.Module:
        return nn.ReLU(inplace=True) if negative_slope is None else nn.LeakyReLU(negative_slope, inplace=True)

    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        act(),
        nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out_channels),
        act(),
    )


class DeformableConv2d(nn.Module):
    """A deformable convolution (DCNv1) with its own learned offsets.

    ``offset`` is a plain conv predicting ``2 * k * k`` offsets per position from the input; it
    starts at zero, so an untrained block computes exactly the regular convolution of ``conv``
    (torchvision's ``DeformConv2d``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as for ``nn.Conv2d``.
        bias: whether ``conv`` has a bias.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1, bias: bool = False
    ) -> None:
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.offset = nn.Conv2d(in_channels, 2 * kernel_size * kernel_size, kernel_size, stride, padding, bias=True)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = DeformConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, self.offset(x))


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    negative_slope: float | None = None,
    activation: bool = True,
    deformable: bool = False,
) -> nn.Sequential:
    """``Sequential(conv no-bias, BN[, LeakyReLU(negative_slope) or ReLU])`` with keys ``0, 1[, 2]``.

    ``deformable=True`` swaps the conv for :class:`DeformableConv2d` (keys ``0.offset``, ``0.conv``).
    """
    padding = kernel_size // 2
    conv: nn.Module
    if deformable:
        conv = DeformableConv2d(in_channels, out_channels, kernel_size, stride, padding)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
    layers = [conv, nn.BatchNorm2d(out_channels)]
    if activation:
        layers.append(nn.ReLU(inplace=True) if negative_slope is None else nn.LeakyReLU(negative_slope, inplace=True))
    return nn.Sequential(*layers)
