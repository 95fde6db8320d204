"""Parameter and multiply-accumulate (MAC) counting with the rules of the papers' tables.

The SCRFD paper reports "FLOPs" measured by mmcv 1.2's ``get_model_complexity_info`` on the raw
forward pass (no decoding, no NMS). Those are multiply-accumulates counted per module call:

* Conv2d: ``k_h * k_w * C_in * C_out / groups * H_out * W_out`` plus ``C_out * H_out * W_out`` for a bias;
* BatchNorm: ``numel(input)``, doubled when affine; ReLU-family: ``numel(output)``;
* max / average pooling: ``numel(input)``; ``nn.Upsample``: ``numel(output)``; Linear: ``numel(input) * out``;
* not counted: functional ops (``F.interpolate``, additions, the learnable scales, sigmoid) and, with
  ``rule="mmcv1.2"``, GroupNorm (mmcv added norm hooks for GN/IN/LN only in 1.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

Rule = Literal["mmcv1.2", "mmcv1.3"]


@dataclass(frozen=True)
class Complexity:
    """Counts for one input size."""

    params: int
    macs: int
    input_hw: tuple[int, int]
    rule: str

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv_macs(module: nn.Conv2d, _inputs: tuple[Tensor, ...], output: Tensor) -> int:
    positions = output.numel() // output.shape[1]
    per_position = module.kernel_size[0] * module.kernel_size[1] * module.in_channels * (module.out_channels // module.groups)
    bias = module.out_channels * positions if module.bias is not None else 0
    return per_position * positions + bias


def _norm_macs(module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> int:
    affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
    return inputs[0].numel() * (2 if affine else 1)


def _output_numel(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> int:
    return output.numel()


def _input_numel(_module: nn.Module, inputs: tuple[Tensor, ...], _output: Tensor) -> int:
    return inputs[0].numel()


def _linear_macs(module: nn.Linear, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    return inputs[0].numel() * output.shape[-1] + (output.shape[-1] if module.bias is not None else 0)


def _counters(rule: Rule) -> list[tuple[tuple[type, ...], Callable[..., int]]]:
    counters: list[tuple[tuple[type, ...], Callable[..., int]]] = [
        ((nn.Conv2d,), _conv_macs),
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), _norm_macs),
        ((nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.PReLU, nn.ELU), _output_numel),
        ((nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d), _input_numel),
        ((nn.Upsample,), _output_numel),
        ((nn.Linear,), _linear_macs),
    ]
    if rule == "mmcv1.3":
        counters.append(((nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm), _norm_macs))
    return counters


def count_macs(model: nn.Module, input_hw: tuple[int, int], rule: Rule = "mmcv1.2") -> Complexity:
    """Count MACs of one forward pass on a ``1 x 3 x H x W`` input, run on the meta device (shapes
    only: no arithmetic and no activation memory, whatever the model's size; the model may itself
    live on ``meta``).

    Args:
        model: any module taking an image batch.
        input_hw: ``(height, width)``; 640x480 VGA is ``(480, 640)``.
        rule: ``"mmcv1.2"`` (the SCRFD paper: GroupNorm not counted) or ``"mmcv1.3"``.

    Example:
        >>> count_macs(create_model("scrfd_500m"), (480, 640)).gmacs  # doctest: +ELLIPSIS
        0.508...
    """
    total = 0
    counters = _counters(rule)

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        for types, counter in counters:
            if isinstance(module, types):
                total += int(counter(module, inputs, output))
                return

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            _forward_on_meta(model, input_hw)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return Complexity(count_parameters(model), total, tuple(input_hw), rule)


def _forward_on_meta(model: nn.Module, input_hw: tuple[int, int]) -> None:
    """One forward pass on the meta device: shapes only, no arithmetic, no memory for activations.

    The model's own weights stay where they are; meta stand-ins of every parameter and buffer are
    swapped in for the call (the counters read shapes only).
    """
    meta_state = {name: torch.empty_like(t, device="meta") for name, t in model.named_parameters()}
    meta_state.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    torch.func.functional_call(model, meta_state, (torch.zeros(1, 3, *input_hw, device="meta"),))
