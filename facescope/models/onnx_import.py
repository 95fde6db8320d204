"""Import the weights of an ONNX export (e.g. the official SCRFD model-zoo files) into a PyTorch model.

Official exports fold BatchNorm into the preceding conv and give the folded initializers numeric
names, while unfolded layers keep their PyTorch names (``neck.lateral_convs.0.conv.weight``);
onnx-simplifier also merged equal initializers, so a node may use a bias named after another
layer. The importer therefore matches *Conv nodes*, not initializer names: it runs the PyTorch
model once with hooks to list its convolutions in call order, pairs them with the ONNX Conv nodes
in graph order (checking every shape, stride and group count) and copies weights node by node.
A folded BatchNorm is set to the identity plus the folded bias (mean 0, var ``1 - eps``, weight 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facescope.errors import WeightsError
from facescope.models.tracing import ConvCall, trace_conv_calls

_UNSUPPORTED_NORM_OPS = {"BatchNormalization", "InstanceNormalization", "GroupNormalization", "LayerNormalization"}


@dataclass
class _OnnxConv:
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    group: int
    weight_name: str


def import_onnx_weights(model: nn.Module, path: str | Path, arch: str) -> None:
    """Copy the weights of the ONNX file at ``path`` into ``model`` (in place).

    Raises:
        WeightsError: when the graph does not have the model's structure.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # noqa: BLE001 - protobuf raises assorted errors on corrupt files
        raise WeightsError(f"cannot read ONNX weights {path}: {type(exc).__name__}: {exc}")
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    bad_ops = sorted({n.op_type for n in graph.node} & _UNSUPPORTED_NORM_OPS)
    if bad_ops:
        raise WeightsError(f"ONNX weights {path} contain {bad_ops} nodes; only BN-folded exports can be imported")
    onnx_convs = [_onnx_conv(node, initializers) for node in graph.node if node.op_type == "Conv"]
    # A conv shared by several levels is called once per level, as it appears once per call in the graph.
    torch_convs = trace_conv_calls(model, torch.zeros(1, 3, 64, 64))
    if len(onnx_convs) != len(torch_convs):
        raise WeightsError(
            f"ONNX weights {path} do not fit architecture '{arch}': {len(onnx_convs)} convolutions in the "
            f"file, {len(torch_convs)} in the model"
        )
    assigned: set[int] = set()
    for index, (src, dst) in enumerate(zip(onnx_convs, torch_convs)):
        _check_pair(src, dst, index, path, arch)
        _copy_conv(src, dst)
        assigned.update(id(p) for p in dst.conv.parameters())
        if dst.norm is not None:
            assigned.update(id(p) for p in dst.norm.parameters())
    assigned.update(_copy_named_parameters(model, initializers))
    unassigned = [n for n, p in model.named_parameters() if id(p) not in assigned]
    if unassigned:
        raise WeightsError(
            f"ONNX weights {path} do not fit architecture '{arch}': no values for {len(unassigned)} "
            f"parameters (e.g. {unassigned[0]})"
        )


def _onnx_conv(node: object, initializers: dict[str, np.ndarray]) -> _OnnxConv:
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs = list(node.input)
    bias = initializers[inputs[2]] if len(inputs) > 2 and inputs[2] else None
    return _OnnxConv(
        weight=initializers[inputs[1]],
        bias=bias,
        stride=tuple(attrs.get("strides", (1, 1))),
        group=int(attrs.get("group", 1)),
        weight_name=inputs[1],
    )


def _check_pair(src: _OnnxConv, dst: ConvCall, index: int, path: Path, arch: str) -> None:
    conv = dst.conv
    problems = []
    if tuple(src.weight.shape) != tuple(conv.weight.shape):
        problems.append(f"weight {list(src.weight.shape)} vs {list(conv.weight.shape)}")
    if src.stride != tuple(conv.stride) or src.group != conv.groups:
        problems.append(f"stride/groups {src.stride}/{src.group} vs {tuple(conv.stride)}/{conv.groups}")
    named = src.weight_name.endswith(".weight") and not src.weight_name.split(".")[0].isdigit()
    if named and src.weight_name != f"{dst.name}.weight":
        problems.append(f"named '{src.weight_name}' but the model's conv is '{dst.name}'")
    if problems:
        raise WeightsError(
            f"ONNX weights {path} do not fit architecture '{arch}' at conv #{index} ({dst.name}): " + "; ".join(problems)
        )


def _copy_conv(src: _OnnxConv, dst: ConvCall) -> None:
    conv = dst.conv
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(src.weight.copy()))
        bias = torch.from_numpy(src.bias.copy()) if src.bias is not None else torch.zeros(conv.out_channels)
        if conv.bias is not None:
            conv.bias.copy_(bias)
        elif dst.norm is not None:
            _set_identity_norm(dst.norm, bias)
        elif src.bias is not None and bool(bias.abs().max() > 0):
            raise WeightsError(f"ONNX conv for '{dst.name}' has a bias but the model's conv has none")


def _set_identity_norm(norm: nn.BatchNorm2d, bias: torch.Tensor) -> None:
    """Make ``norm`` compute ``x + bias`` in eval mode (BatchNorm folded into the conv)."""
    norm.weight.fill_(1.0)
    norm.bias.copy_(bias)
    norm.running_mean.zero_()
    norm.running_var.fill_(1.0 - norm.eps)


def _copy_named_parameters(model: nn.Module, initializers: dict[str, np.ndarray]) -> set[int]:
    """Copy initializers named after a non-conv parameter (e.g. ``bbox_head.scales.0.scale``)."""
    conv_params = {id(p) for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()}
    copied = set()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if id(param) in conv_params or name not in initializers:
                continue
            value = torch.from_numpy(np.asarray(initializers[name]).copy())
            if value.numel() != param.numel():
                raise WeightsError(f"ONNX initializer '{name}' has {value.numel()} values, the model needs {param.numel()}")
            param.copy_(value.reshape(param.shape))
            copied.add(id(param))
    return copied
