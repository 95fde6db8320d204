"""Which convolution feeds which BatchNorm, found by running a model once with hooks.

Used to import BN-folded ONNX weights (convolutions in call order) and to fold BatchNorm for fast
inference; hooks make both work for any architecture without per-family tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ConvCall:
    """One call of a convolution during the traced forward pass.

    Attributes:
        name: the convolution's module name.
        conv: the module.
        norm_name / norm: the BatchNorm applied directly to this call's output, if any.
        num_norms: how many BatchNorm calls consumed this output.
    """

    name: str
    conv: nn.Conv2d
    norm_name: str | None = None
    norm: nn.BatchNorm2d | None = None
    num_norms: int = 0


def trace_conv_calls(model: nn.Module, probe: Tensor) -> list[ConvCall]:
    """Run ``probe`` through ``model`` (in eval mode, no grad) and list every Conv2d call in order."""
    names = {module: name for name, module in model.named_modules()}
    calls: list[ConvCall] = []
    producers: dict[int, tuple[Tensor, ConvCall]] = {}  # id(output) -> (output kept alive, its call)

    def on_conv(module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        call = ConvCall(names[module], module)  # type: ignore[arg-type]
        calls.append(call)
        producers[id(output)] = (output, call)

    def on_norm(module: nn.Module, inputs: tuple, _output: Tensor) -> None:
        found = producers.get(id(inputs[0]))
        if found is not None and found[0] is inputs[0]:
            call = found[1]
            call.norm_name, call.norm = names[module], module  # type: ignore[assignment]
            call.num_norms += 1

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_hook(on_norm))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls
