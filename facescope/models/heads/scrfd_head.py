"""SCRFD head (insightface ``mmdet/models/dense_heads/scrfd_head.py``), state-dict compatible."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from facescope.models.layers import ConvModule, DepthwiseSeparableConvModule, NormSpec, Scale, flatten_level

PRIOR_PROBABILITY_BIAS = -4.595  # logit of 0.01, the official classification-bias init


class _Integral(nn.Module):
    """Holds the unused DFL ``project`` buffer that official checkpoints contain."""

    def __init__(self, reg_max: int = 8) -> None:
        super().__init__()
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1))


class SCRFDHead(nn.Module):
    """Shared classification / box / landmark tower per level, GFL-style.

    Args:
        in_channels: neck output channels.
        feat_channels: tower width.
        stacked_convs: tower depth.
        norm: GN or BN of the tower convs.
        strides: pyramid strides (also the ``'(8, 8)'`` keys when towers are not shared).
        share_towers: one tower for all levels (key ``'0'``) instead of one per level.
        depthwise: towers of depthwise-separable convs (MobileNet variants).
        use_scale: a learnable scalar on each level's box output.
        use_landmarks: predict 5 landmarks.
        num_anchors: anchors per location.

    Returns (forward):
        Per level ``(cls_logits [B, N_l, 1], box_regs [B, N_l, 4], landmark_regs [B, N_l, 10] | None)``.
    """

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        stacked_convs: int,
        norm: NormSpec,
        strides: Sequence[int] = (8, 16, 32),
        share_towers: bool = True,
        depthwise: bool = False,
        use_scale: bool = True,
        use_landmarks: bool = False,
        num_anchors: int = 2,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.num_anchors = num_anchors
        self.use_landmarks = use_landmarks
        self.keys = ["0"] if share_towers else [str((s, s)) for s in self.strides]
        self.cls_stride_convs = nn.ModuleDict(
            {k: self._tower(in_channels, feat_channels, stacked_convs, norm, depthwise) for k in self.keys}
        )
        self.stride_cls = nn.ModuleDict({k: nn.Conv2d(feat_channels, num_anchors, 3, padding=1) for k in self.keys})
        self.stride_reg = nn.ModuleDict({k: nn.Conv2d(feat_channels, num_anchors * 4, 3, padding=1) for k in self.keys})
        if use_landmarks:
            self.stride_kps = nn.ModuleDict(
                {k: nn.Conv2d(feat_channels, num_anchors * 10, 3, padding=1) for k in self.keys}
            )
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides) if use_scale else None
        self.integral = _Integral()
        self.reset_parameters()

    @staticmethod
    def _tower(in_channels: int, feat_channels: int, depth: int, norm: NormSpec, depthwise: bool) -> nn.ModuleList:
        layers = []
        for i in range(depth):
            channels = in_channels if i == 0 else feat_channels
            if depthwise:
                layers.append(DepthwiseSeparableConvModule(channels, feat_channels, norm))
            else:
                layers.append(ConvModule(channels, feat_channels, 3, padding=1, norm=norm))
        return nn.ModuleList(layers)

    def reset_parameters(self) -> None:
        """Official init: N(0, 0.01) convs, classification bias at the 1% prior."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for conv in self.stride_cls.values():
            nn.init.constant_(conv.bias, PRIOR_PROBABILITY_BIAS)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor] | None]:
        cls_logits, box_regs, landmark_regs = [], [], []
        for level, x in enumerate(features):
            key = self.keys[0] if len(self.keys) == 1 else self.keys[level]
            for layer in self.cls_stride_convs[key]:
                x = layer(x)
            cls = self.stride_cls[key](x)
            box = self.stride_reg[key](x)
            if self.scales is not None:
                box = self.scales[level](box)
            cls_logits.append(flatten_level(cls, 1))
            box_regs.append(flatten_level(box, 4))
            if self.use_landmarks:
                landmark_regs.append(flatten_level(self.stride_kps[key](x), 10))
        return cls_logits, box_regs, (landmark_regs if self.use_landmarks else None)
