"""SCRFD: "Sample and Computation Redistribution for Efficient Face Detection" (Guo et al., ICLR 2022).

Backbone (MobileNetV1 or ResNetV1e) -> PAFPN on strides 8/16/32 -> SCRFD head with 2 square
anchors per location (16/32, 64/128, 256/512), sigmoid classification, distance box coding and
10-value landmark coding. State dicts match the official mmdet checkpoints key for key. The head layout,
presets and releases are declared in :mod:`facescope.models.catalog.scrfd`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from facescope.models.backbones import MobileNetV1, ResNetV1e
from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.heads import SCRFDHead
from facescope.models.layers import BN, GN, NormSpec
from facescope.models.necks import PAFPN
from facescope.models.catalog.scrfd import (  # noqa: F401 - presets and releases re-exported for callers
    ANCHOR_SIZES,
    SCRFD_10G_KPS_WEIGHTS,
    SCRFD_2_5G_KPS_WEIGHTS,
    SCRFD_500M_KPS_WEIGHTS,
    SCRFD_INPUT,
    SCRFD_PRESETS,
    STRIDES,
    scrfd_head,
)
from facescope.ops.anchors import AnchorGenerator


class SCRFD(DenseFaceDetector):
    """SCRFD detector: ``backbone -> neck -> head`` with injected components.

    Args:
        backbone: returns 4 feature maps (strides 4..32).
        neck: maps them to 3 levels (strides 8, 16, 32).
        head: :class:`SCRFDHead`.
        anchor_generator: defaults to SCRFD's 2 anchors per location.

    Example:
        >>> model = create_model("scrfd_500m_kps").eval()
        >>> out = model(torch.zeros(1, 3, 640, 640))
        >>> [t.shape[1] for t in out.cls_logits]
        [12800, 3200, 800]
    """

    family = "scrfd"

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: SCRFDHead,
        anchor_generator: AnchorGenerator | None = None,
    ) -> None:
        layout = scrfd_head(head.use_landmarks)  # the catalogue's declaration: one source of truth
        super().__init__(
            anchor_generator or layout.anchor_generator(),
            layout.coder,
            SCRFD_INPUT,
            has_landmarks=head.use_landmarks,
            score_activation=layout.score_activation,
        )
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = head

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` (H, W multiples of 32) -> per-level logits and regressions."""
        cls_logits, box_regs, landmark_regs = self.bbox_head(self.neck(self.backbone(images)))
        return DenseOutputs(cls_logits, box_regs, landmark_regs)



def build_scrfd(
    backbone: nn.Module,
    neck_channels: int,
    feat_channels: int,
    stacked_convs: int,
    norm: NormSpec,
    *,
    share_towers: bool,
    depthwise: bool,
    use_scale: bool,
    use_landmarks: bool,
) -> SCRFD:
    """Wire a backbone into PAFPN and an SCRFD head (the structure all SCRFD configs share)."""
    neck = PAFPN(backbone.out_channels, neck_channels, start_level=1)
    head = SCRFDHead(
        neck_channels,
        feat_channels,
        stacked_convs,
        norm,
        STRIDES,
        share_towers=share_towers,
        depthwise=depthwise,
        use_scale=use_scale,
        use_landmarks=use_landmarks,
    )
    return SCRFD(backbone, neck, head)


def _mbv1_500m() -> MobileNetV1:
    return MobileNetV1((16, 16, 40, 72, 152, 288), (2, 3, 2, 6))


def _resnet_2_5g() -> ResNetV1e:
    return ResNetV1e(24, "basic", (3, 5, 3, 2), (24, 48, 48, 80))


def _resnet_10g() -> ResNetV1e:
    return ResNetV1e(56, "basic", (3, 4, 2, 3), (56, 88, 88, 224))


def scrfd_500m() -> SCRFD:
    """SCRFD-0.5GF (config ``scrfd_500m``): MobileNetV1 backbone, GN shared depthwise head.

    Example:
        >>> sum(p.numel() for p in scrfd_500m().parameters())
        572741
    """
    return build_scrfd(_mbv1_500m(), 16, 64, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_500m_kps() -> SCRFD:
    """SCRFD-0.5GF with 5 landmarks (config ``scrfd_500m_bnkps``): BN, per-level towers, no scales.

    Example:
        >>> sum(p.numel() for p in scrfd_500m_kps().parameters())
        631410
    """
    return build_scrfd(_mbv1_500m(), 16, 64, 2, BN, share_towers=False, depthwise=True, use_scale=False, use_landmarks=True)


def scrfd_1g() -> SCRFD:
    """SCRFD-1GF: MobileNetV1 backbone, GN shared depthwise head.

    Example:
        >>> sum(p.numel() for p in scrfd_1g().parameters())
        635565
    """
    backbone = MobileNetV1((32, 48, 48, 160, 216, 312), (3, 2, 1, 5))
    return build_scrfd(backbone, 24, 96, 2, GN(8), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_2_5g() -> SCRFD:
    """SCRFD-2.5GF: basic-block ResNetV1e, GN shared head.

    Example:
        >>> sum(p.numel() for p in scrfd_2_5g().parameters())
        671761
    """
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_2_5g_kps() -> SCRFD:
    """SCRFD-2.5GF with 5 landmarks (config ``scrfd_2.5g_bnkps``): BN, per-level towers.

    Example:
        >>> sum(p.numel() for p in scrfd_2_5g_kps().parameters())
        819809
    """
    return build_scrfd(_resnet_2_5g(), 24, 64, 2, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


def scrfd_10g() -> SCRFD:
    """SCRFD-10GF: basic-block ResNetV1e, GN shared head of three convs.

    Example:
        >>> sum(p.numel() for p in scrfd_10g().parameters())
        3860225
    """
    return build_scrfd(_resnet_10g(), 56, 80, 3, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_10g_kps() -> SCRFD:
    """SCRFD-10GF with 5 landmarks (config ``scrfd_10g_bnkps``): BN, per-level towers.

    Example:
        >>> sum(p.numel() for p in scrfd_10g_kps().parameters())
        4229905
    """
    return build_scrfd(_resnet_10g(), 56, 80, 3, BN, share_towers=False, depthwise=False, use_scale=True, use_landmarks=True)


def scrfd_34g() -> SCRFD:
    """SCRFD-34GF: bottleneck ResNetV1e, GN shared head.

    Example:
        >>> sum(p.numel() for p in scrfd_34g().parameters())
        9802737
    """
    backbone = ResNetV1e(56, "bottleneck", (17, 16, 2, 8), (56, 56, 144, 184))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


# Baselines of the paper's Table 2 (configs/scrfd/base_*.py), registered in facescope.models.catalog.scrfd.


def scrfd_base_500m() -> SCRFD:
    """The paper's Table 2 baseline MobileNet-0.5GF.

    Example:
        >>> sum(p.numel() for p in scrfd_base_500m().parameters())
        378829
    """
    backbone = MobileNetV1((8, 16, 32, 64, 128, 256), (2, 2, 6, 3))
    return build_scrfd(backbone, 32, 80, 2, GN(16), share_towers=True, depthwise=True, use_scale=True, use_landmarks=False)


def scrfd_base_2_5g() -> SCRFD:
    """The paper's Table 2 baseline ResNet-2.5GF.

    Example:
        >>> sum(p.numel() for p in scrfd_base_2_5g().parameters())
        1624709
    """
    backbone = ResNetV1e(16, "basic", (3, 4, 6, 3), (16, 32, 64, 128))
    return build_scrfd(backbone, 48, 96, 2, GN(16), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_base_10g() -> SCRFD:
    """The paper's Table 2 baseline ResNet-10GF.

    Example:
        >>> sum(p.numel() for p in scrfd_base_10g().parameters())
        6851069
    """
    backbone = ResNetV1e(32, "basic", (3, 4, 6, 3), (32, 64, 128, 256))
    return build_scrfd(backbone, 128, 160, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_base_34g() -> SCRFD:
    """The paper's Table 2 baseline ResNet-34GF.

    Example:
        >>> sum(p.numel() for p in scrfd_base_34g().parameters())
        24814189
    """
    backbone = ResNetV1e(64, "bottleneck", (3, 8, 4, 3), (64, 128, 256, 512))
    return build_scrfd(backbone, 128, 256, 2, GN(32), share_towers=True, depthwise=False, use_scale=True, use_landmarks=False)


def scrfd_cr(
    stem_width: int = 24,
    block: Literal["basic", "bottleneck"] = "basic",
    depths: Sequence[int] = (3, 5, 3, 2),
    widths: Sequence[int] = (24, 48, 48, 80),
    neck_width: int = 24,
    head_convs: int = 2,
    head_width: int = 64,
) -> SCRFD:
    """A point of SCRFD's computation-redistribution space (paper section 4.2).

    Args:
        stem_width: w0, channels of the deep stem's last conv.
        block: ``"basic"`` or ``"bottleneck"`` (ratio 4).
        depths: blocks of each of the four stages.
        widths: planes of each stage.
        neck_width: PAFPN channels.
        head_convs: 3x3 convs of the shared head tower.
        head_width: channels of the head tower (GroupNorm with 16 groups, or gcd(width, 16)).

    The defaults build SCRFD-2.5GF's structure (``scrfd_2.5g``).

    Example:
        >>> sum(p.numel() for p in scrfd_cr().parameters())  # the defaults: scrfd_2.5g's structure
        671761
        >>> small = scrfd_cr(16, "basic", (2, 2, 2, 2), (16, 32, 32, 64), neck_width=16, head_convs=1, head_width=32)
    """
    if len(depths) != 4 or len(widths) != 4:
        raise ValueError(f"scrfd_cr needs four stage depths and widths, got depths={list(depths)}, widths={list(widths)}")
    backbone = ResNetV1e(stem_width, block, tuple(depths), tuple(widths))
    norm = GN(math.gcd(head_width, 16))
    return build_scrfd(
        backbone, neck_width, head_width, head_convs, norm, share_towers=True, depthwise=False, use_scale=True, use_landmarks=False
    )
