"""MobileNetV1-0.25 body of Pytorch_Retinaface (biubug6), and the same body with a stride-4 tap.

Three stages (``stage1``..``stage3``) of 3x3 conv / depthwise-separable blocks, every activation a
``LeakyReLU(0.1)``; the classifier (``avg``, ``fc``) of the ImageNet network is not part of the
detector, as torchvision's ``IntermediateLayerGetter`` drops it in the official code. State-dict
keys: ``stage1.0.0.weight``, ``stage1.0.1.running_mean``, ``stage1.1.3.weight``, ..., so Pytorch_Retinaface's
ImageNet file ``mobilenetV1X0.25_pretrain.tar`` loads into both classes
(:func:`~facescope.models.backbones.pretrain.load_backbone_pretrain`).
"""

from __future__ import annotations

from torch import Tensor, nn

from facescope.models.layers import conv_bn_act, conv_dw

LEAKY_SLOPE = 0.1


class RetinaFaceMobileNetV1(nn.Module):
    """MobileNetV1 with width 0.25 as in Pytorch_Retinaface ``models/net.py`` (``width`` scales every layer:
    1.0 is the full MobileNetV1 of ASFD-D1, whose channels are 4x those below).

    Returns (forward):
        ``[C3, C4, C5]``: ``Tensor[B, 64, ceil(H/8), ceil(W/8)]``, ``[B, 128, H/16, W/16]``,
        ``[B, 256, H/32, W/32]`` (sides rounded up).

    Example:
        >>> [f.shape[1:] for f in RetinaFaceMobileNetV1()(torch.zeros(1, 3, 64, 64))]
        [torch.Size([64, 8, 8]), torch.Size([128, 4, 4]), torch.Size([256, 2, 2])]
    """

    out_channels: tuple[int, ...] = (64, 128, 256)

    def __init__(self, width: float = 0.25) -> None:
        super().__init__()
        slope = LEAKY_SLOPE
        # MobileNetV1's channel plan at width 1.0 (32 ... 1024), scaled; the ImageNet file is width 0.25
        c = [max(8, round(n * width)) for n in (32, 64, 128, 256, 512, 1024)]
        self.out_channels = self.tap_channels(c)
        self.stage1 = nn.Sequential(
            conv_bn_act(3, c[0], stride=2, negative_slope=slope),
            conv_dw(c[0], c[1], 1, slope),
            conv_dw(c[1], c[2], 2, slope),
            conv_dw(c[2], c[2], 1, slope),
            conv_dw(c[2], c[3], 2, slope),
            conv_dw(c[3], c[3], 1, slope),
        )
        self.stage2 = nn.Sequential(conv_dw(c[3], c[4], 2, slope), *(conv_dw(c[4], c[4], 1, slope) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(c[4], c[5], 2, slope), conv_dw(c[5], c[5], 1, slope))

    @staticmethod
    def tap_channels(c: list[int]) -> tuple[int, ...]:
        """The returned maps' channels given the six stage widths ``c`` (strides 2 .. 32)."""
        return (c[3], c[4], c[5])

    def forward(self, x: Tensor) -> list[Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


class MobileNetV1Taps(RetinaFaceMobileNetV1):
    """Pytorch_Retinaface's MobileNetV1-0.25 (same modules and state-dict keys, so its ImageNet file loads)
    with a fourth tap: the stride-4 map inside ``stage1`` (after its fourth block); DSFD's small variant.

    Returns (forward):
        ``[Tensor[B, 32, ceil(H/4), .], Tensor[B, 64, ./8], Tensor[B, 128, ./16], Tensor[B, 256, ./32]]``.

    Example:
        >>> [f.shape[1] for f in MobileNetV1Taps()(torch.zeros(1, 3, 64, 64))]
        [32, 64, 128, 256]
    """

    out_channels: tuple[int, ...] = (32, 64, 128, 256)
    #: ``stage1[:STRIDE4_BLOCKS]`` ends at stride 4 (conv s2, dw s1, dw s2, dw s1).
    STRIDE4_BLOCKS = 4

    @staticmethod
    def tap_channels(c: list[int]) -> tuple[int, ...]:
        return (c[2], c[3], c[4], c[5])

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        c2 = self.stage1[: self.STRIDE4_BLOCKS](x)
        c3 = self.stage1[self.STRIDE4_BLOCKS :](c2)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c2, c3, c4, c5]
