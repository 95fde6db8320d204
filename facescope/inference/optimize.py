"""Inference-only rewrites of a model for the eager PyTorch backend: BatchNorm folded into the
preceding convolution and channels-last memory layout. Both keep the outputs (to float32 rounding)
and never touch the caller's model: the backend runs an optimised copy."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.tracing import trace_conv_calls

PROBE_HW = (64, 64)  # input of the tracing forward pass; any multiple of the size divisor works
PARITY_TOLERANCE = 1e-4  # relative to each output's largest value; folding changes only float rounding


def find_conv_bn_pairs(model: nn.Module, probe: Tensor) -> list[tuple[str, str]]:
    """``(conv name, BatchNorm name)`` pairs that can be folded: the convolution is called once and
    its output feeds exactly one BatchNorm (found by tracing ``probe``, so any architecture works)."""
    calls = trace_conv_calls(model, probe)
    times_called: dict[str, int] = {}
    for call in calls:
        times_called[call.name] = times_called.get(call.name, 0) + 1
    return [(c.name, c.norm_name) for c in calls if c.norm_name and c.num_norms == 1 and times_called[c.name] == 1]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def fold_batchnorm(model: nn.Module, probe: Tensor) -> nn.Module:
    """A copy of ``model`` (eval mode) with every foldable BatchNorm merged into its convolution."""
    folded = copy.deepcopy(model).eval()
    for conv_name, norm_name in find_conv_bn_pairs(folded, probe):
        conv, norm = folded.get_submodule(conv_name), folded.get_submodule(norm_name)
        _set_submodule(folded, conv_name, fuse_conv_bn_eval(conv, norm))
        _set_submodule(folded, norm_name, nn.Identity())
    return folded


class PointwiseAsLinear(nn.Module):
    """A 1x1, stride-1, ungrouped convolution computed as one GEMM over the channels-last pixels.

    Equal to the convolution; faster on CPU, where PyTorch runs single-threaded 1x1 convolutions
    through its slow im2col path (with a strided bias fill in channels-last). The output keeps
    channels-last strides.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        # (out, in, 1, 1) -> (out, in)
        self.weight = nn.Parameter(conv.weight.detach().reshape(conv.out_channels, conv.in_channels).clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, H, W, C) (a view for channels-last input) -> (B, H, W, out) -> (B, out, H, W)
        return nn.functional.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


def _is_pointwise(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.padding in ((0, 0), "valid")
        and conv.dilation == (1, 1)
        and conv.groups == 1
    )


def pointwise_as_linear(model: nn.Module) -> nn.Module:
    """Replace (in place) every 1x1 convolution of ``model`` by :class:`PointwiseAsLinear`."""
    for name, module in list(model.named_modules()):
        if _is_pointwise(module):
            _set_submodule(model, name, PointwiseAsLinear(module))
    return model


def _outputs_close(a: DenseOutputs, b: DenseOutputs) -> bool:
    """Every output tensor equal to ``PARITY_TOLERANCE`` of its own largest magnitude."""
    tensors_a = a.cls_logits + a.box_regs + (a.landmark_regs or [])
    tensors_b = b.cls_logits + b.box_regs + (b.landmark_regs or [])
    return all(
        float((x - y).abs().max()) <= PARITY_TOLERANCE * float(x.abs().max()) + 1e-7 for x, y in zip(tensors_a, tensors_b)
    )


def optimize_for_inference(model: DenseFaceDetector, channels_last: bool = True) -> DenseFaceDetector:
    """BatchNorm-folded, channels-last copy of ``model`` for the eager backend.

    The copy is checked against the original on a random probe input; if a rewrite changed the
    outputs beyond float rounding (an architecture the folding does not understand), the original
    model is returned unchanged.
    """
    device = next(model.parameters()).device
    divisor = model.input_spec.size_divisor
    probe = torch.randn(1, 3, max(PROBE_HW[0], divisor), max(PROBE_HW[1], divisor), generator=torch.Generator().manual_seed(0)).to(device)
    model = model.eval()
    optimised = fold_batchnorm(model, probe)
    if channels_last:
        optimised = pointwise_as_linear(optimised).to(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(probe)
        candidate = optimised(probe.contiguous(memory_format=torch.channels_last) if channels_last else probe)
    return optimised if _outputs_close(reference, candidate) else model
