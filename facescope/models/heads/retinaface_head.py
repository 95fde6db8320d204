"""RetinaFace prediction heads.

* :class:`ClassHead`, :class:`BboxHead`, :class:`LandmarkHead`: the per-level 1x1 convs of
  Pytorch_Retinaface (one of each per level, in ``ModuleList`` attributes of the detector named
  ``ClassHead``, ``BboxHead``, ``LandmarkHead`` so official checkpoints load key for key).
* :class:`SharedRetinaFaceHead`: the paper's single 1x1 loss head shared by all pyramid levels,
  optionally with the dense-regression parameters (mesh code, camera, illumination) per anchor.

All heads return ``Tensor[B, H*W*A, k]`` with rows ordered (row, column, anchor), the order of
:class:`~facescope.ops.anchors.AnchorGenerator`.
"""

from __future__ import annotations

from torch import Tensor, nn

from facescope.models.layers import flatten_level


class _AnchorConv(nn.Module):
    """A biased 1x1 conv predicting ``values_per_anchor`` numbers for each of ``num_anchors``."""

    values_per_anchor = 0

    def __init__(self, in_channels: int, num_anchors: int = 2) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_channels, num_anchors * self.values_per_anchor, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> ``Tensor[B, H*W*A, values_per_anchor]``."""
        return flatten_level(self.conv1x1(x), self.values_per_anchor)


class ClassHead(_AnchorConv):
    """Two-class (background, face) softmax logits per anchor."""

    values_per_anchor = 2


class BboxHead(_AnchorConv):
    """Box deltas ``(dx, dy, dw, dh)`` per anchor."""

    values_per_anchor = 4


class LandmarkHead(_AnchorConv):
    """Five ``(dx, dy)`` landmark deltas per anchor."""

    values_per_anchor = 10


def make_level_heads(head_cls: type[_AnchorConv], num_levels: int, in_channels: int, num_anchors: int) -> nn.ModuleList:
    """One head per pyramid level (Pytorch_Retinaface ``_make_class_head`` & co.)."""
    return nn.ModuleList(head_cls(in_channels, num_anchors) for _ in range(num_levels))


class SharedRetinaFaceHead(nn.Module):
    """The paper's loss head: 1x1 convs shared across pyramid levels.

    Args:
        in_channels: channels of every level (256 in the paper).
        num_anchors: anchors per location (3 in the paper).
        dense_params: extra numbers per anchor for the dense-regression branch (0 = none; 144 =
            128 shape/texture code + 7 camera + 9 illumination).

    Returns (forward, per level):
        ``cls [B, N_l, 2]``, ``box [B, N_l, 4]``, ``landmarks [B, N_l, 10]`` and, with
        ``dense_params``, ``dense [B, N_l, dense_params]``.
    """

    def __init__(self, in_channels: int = 256, num_anchors: int = 3, dense_params: int = 0) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.dense_params = dense_params
        self.cls_conv = nn.Conv2d(in_channels, num_anchors * 2, 1)
        self.box_conv = nn.Conv2d(in_channels, num_anchors * 4, 1)
        self.landmark_conv = nn.Conv2d(in_channels, num_anchors * 10, 1)
        self.dense_conv = nn.Conv2d(in_channels, num_anchors * dense_params, 1) if dense_params else None
        for conv in (self.cls_conv, self.box_conv, self.landmark_conv, self.dense_conv):
            if conv is not None:
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor] | None]:
        cls = [flatten_level(self.cls_conv(f), 2) for f in features]
        box = [flatten_level(self.box_conv(f), 4) for f in features]
        landmarks = [flatten_level(self.landmark_conv(f), 10) for f in features]
        dense = None
        if self.dense_conv is not None:
            dense = [flatten_level(self.dense_conv(f), self.dense_params) for f in features]
        return cls, box, landmarks, dense
