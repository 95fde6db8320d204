"""SHF's dilated detection head: one 3x3 conv applied at several dilations, one anchor size each.

From the released smallhardface model (``train_different_dilation_template.prototxt``): three
Caffe layers ``head_1`` / ``head_2`` / ``head_4`` (dilation = padding = 1, 2, 4) share their
weight and bias (Caffe param names ``head_w`` / ``head_b``), each followed by a ReLU and its own
1x1 classification (2 logits: background, face) and 1x1 box (4 Faster R-CNN deltas) convolutions.
Branch ``i`` predicts the anchor of size ``16 * dilation_i`` at every stride-8 position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from facescope.models.layers import flatten_level


class SharedDilatedHead(nn.Module):
    """Three (or more) branches over one feature map, sharing one 3x3 conv's parameters.

    ``convs[i]`` is an ``nn.Conv2d`` with dilation ``dilations[i]`` whose ``weight`` and ``bias``
    are the very same :class:`~torch.nn.Parameter` objects as ``convs[0]``'s: one tensor, one
    gradient accumulating the contributions of every branch, counted once by ``parameters()``.
    Keeping one module per dilation lets per-module tools (the MAC counter's hooks, ONNX export)
    see each application. The state dict holds the shared tensors once, as ``convs.0.weight`` /
    ``convs.0.bias``; loading fills the aliases from them and rejects a state dict whose aliases
    disagree.

    Args:
        in_channels: channels of the input map (128 in SHF, after the 512 -> 128 reduction).
        channels: output channels of the shared conv (128).
        dilations: one branch per dilation, in anchor order (1, 2, 4).
        num_classes: logits per anchor (2: softmax over background, face).

    Example:
        >>> head = SharedDilatedHead(128, 128, (1, 2, 4))
        >>> cls, box = head(torch.zeros(1, 128, 5, 7))
        >>> [tuple(t.shape) for t in cls], [tuple(t.shape) for t in box][0]
        ([(1, 35, 2), (1, 35, 2), (1, 35, 2)], (1, 35, 4))
    """

    def __init__(
        self, in_channels: int = 128, channels: int = 128, dilations: Sequence[int] = (1, 2, 4), num_classes: int = 2
    ) -> None:
        super().__init__()
        if not dilations:
            raise ValueError("SharedDilatedHead needs at least one dilation")
        self.dilations = tuple(int(d) for d in dilations)
        convs = [nn.Conv2d(in_channels, channels, 3, padding=d, dilation=d) for d in self.dilations]
        for conv in convs[1:]:
            conv.weight = convs[0].weight
            conv.bias = convs[0].bias
        self.convs = nn.ModuleList(convs)
        self.relu = nn.ReLU(inplace=True)
        self.cls_convs = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in self.dilations)
        self.box_convs = nn.ModuleList(nn.Conv2d(channels, 4, 1) for _ in self.dilations)
        self.num_classes = num_classes
        self.register_state_dict_post_hook(_drop_alias_keys)
        self.register_load_state_dict_pre_hook(_fill_alias_keys)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Caffe initialisation of the released model: Gaussian std 0.01 weights, zero biases."""
        for conv in [self.convs[0], *self.cls_convs, *self.box_convs]:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``Tensor[B, C, H, W]`` -> per branch ``[B, H*W, num_classes]`` logits and ``[B, H*W, 4]`` deltas.

        Rows are ordered (row, column), one anchor per branch and position.
        """
        cls_logits, box_regs = [], []
        for conv, cls_conv, box_conv in zip(self.convs, self.cls_convs, self.box_convs):
            branch = self.relu(conv(features))
            cls_logits.append(flatten_level(cls_conv(branch), self.num_classes))
            box_regs.append(flatten_level(box_conv(branch), 4))
        return cls_logits, box_regs


def _alias_keys(module: SharedDilatedHead, prefix: str) -> list[tuple[str, str]]:
    """``(canonical, alias)`` state-dict key pairs of the shared parameters."""
    return [
        (f"{prefix}convs.0.{kind}", f"{prefix}convs.{i}.{kind}")
        for i in range(1, len(module.convs))
        for kind in ("weight", "bias")
    ]


def _drop_alias_keys(module: SharedDilatedHead, state_dict: dict[str, Any], prefix: str, _metadata: Any) -> None:
    for _canonical, alias in _alias_keys(module, prefix):
        state_dict.pop(alias, None)


def _fill_alias_keys(
    module: SharedDilatedHead,
    state_dict: dict[str, Any],
    prefix: str,
    _metadata: Any,
    _strict: bool,
    _missing_keys: list[str],
    _unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    for canonical, alias in _alias_keys(module, prefix):
        if canonical not in state_dict:
            continue  # reported as a missing key by the normal loading
        if alias in state_dict and not torch.equal(state_dict[alias], state_dict[canonical]):
            error_msgs.append(f"'{alias}' differs from '{canonical}', but the two are one shared parameter")
            continue
        state_dict[alias] = state_dict[canonical]


__all__ = ["SharedDilatedHead"]
