"""Exact inference rewrites of a dense detector's ONNX graph, and the on-disk cache of rewritten files.

:func:`merge_sibling_convs` merges convolutions that read the same tensor with the same kernel,
stride, padding and dilation into one convolution followed by a ``Split``. In SCRFD's head the
classification (2 channels), box (8) and landmark (20) convolutions of each level read the same
64-channel tower output: onnxruntime's blocked (NCHWc) convolution pads every output to 16
channels, so three separate convolutions compute 64 output channels where one merged convolution
computes 32 for the same 30 values. Every output channel keeps its own weights and bias, so the
outputs are those of the original graph up to float rounding (0 or a few ulp, checked on a probe
input before a rewritten file is used). SCRFD-500M-kps: 0.88x the network's time at 640x640, one
thread.

:func:`optimized_model_bytes` is what :class:`~facescope.inference.backends.OnnxRuntimeBackend`
calls: the rewritten file from the cache (``$FACESCOPE_HOME/onnx_optimized/<sha256>.<version>.onnx``,
read without the ``onnx`` package), else the rewrite done now when ``onnx`` is installed (it comes
with the ``torch`` extra; saved atomically for the next load), else the file as it is.
Quantised (QDQ) files are run as they are: ``facescope quantize`` merges before it quantises.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

REWRITE_VERSION = "merge1"  # part of the cache key: a changed rewrite never reads an old file
PARITY_RTOL = 1e-4  # relative to each output's largest magnitude, on the probe input
LOGGER_NAME = "facescope.onnx"  # logging is imported only when there is something to log


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def opset_of(proto: Any) -> int:
    """The default-domain opset an ONNX model imports (0 when none)."""
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _mergeable_groups(proto: Any) -> list[list[int]]:
    """Indices into ``graph.node`` of the groups (>= 2) of plain convolutions reading the same
    tensor with identical attributes and constant weights of the same kernel shape."""
    initializers = {i.name: i for i in proto.graph.initializer}
    groups: dict[tuple, list[int]] = collections.OrderedDict()
    for index, node in enumerate(proto.graph.node):
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node.input[1] not in initializers:
            continue
        if len(node.input) > 2 and node.input[2] and node.input[2] not in initializers:
            continue
        attributes = _attributes(node)
        if attributes.get("group", 1) != 1 or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        kernel = tuple(initializers[node.input[1]].dims[1:])
        key = (node.input[0], kernel, tuple(sorted((k, repr(v)) for k, v in attributes.items())))
        groups.setdefault(key, []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def merge_sibling_convs(proto: Any) -> int:
    """Merge (in place) every group of convolutions reading one tensor with the same kernel, stride,
    padding and dilation into ``Conv`` (weights and biases concatenated) + ``Split`` (the original
    output names, so consumers are untouched). Returns the number of convolutions removed."""
    from onnx import numpy_helper
    from onnx.helper import make_node

    graph = proto.graph
    initializers = {i.name: i for i in graph.initializer}
    replaced: dict[int, list[Any]] = {}  # first index of a group -> the merged Conv and its Split
    removed: set[int] = set()
    for indices in _mergeable_groups(proto):
        group = [graph.node[i] for i in indices]
        weights = [numpy_helper.to_array(initializers[n.input[1]]) for n in group]
        biases = [
            numpy_helper.to_array(initializers[n.input[2]]) if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], w.dtype)
            for n, w in zip(group, weights)
        ]
        name = f"{group[0].name or group[0].output[0]}_merged"
        graph.initializer.extend(
            [numpy_helper.from_array(np.concatenate(weights), f"{name}.weight"), numpy_helper.from_array(np.concatenate(biases), f"{name}.bias")]
        )
        conv = make_node("Conv", [group[0].input[0], f"{name}.weight", f"{name}.bias"], [f"{name}.out"], name=name)
        conv.attribute.extend(group[0].attribute)
        sizes = [int(w.shape[0]) for w in weights]
        outputs = [n.output[0] for n in group]
        if opset_of(proto) >= 13:  # Split's sizes became an input in opset 13
            graph.initializer.append(numpy_helper.from_array(np.asarray(sizes, np.int64), f"{name}.split"))
            split = make_node("Split", [f"{name}.out", f"{name}.split"], outputs, name=f"{name}_split", axis=1)
        else:
            split = make_node("Split", [f"{name}.out"], outputs, name=f"{name}_split", axis=1, split=sizes)
        replaced[indices[0]] = [conv, split]
        removed.update(indices)
    if not replaced:
        return 0
    nodes = []
    for index, node in enumerate(graph.node):
        nodes.extend(replaced.get(index, []))
        if index not in removed:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    return len(removed) - len(replaced)


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def cache_path(sha256: str) -> Path:
    """Where the rewritten copy of the file with this sha256 lives (it may not exist)."""
    from facescope.models.weights import facescope_home

    return facescope_home() / "onnx_optimized" / f"{sha256}.{REWRITE_VERSION}.onnx"


def optimized_model_bytes(payload: bytes, sha256: str, probe_side: int = 64) -> bytes:
    """The bytes to run for an ONNX file: its cached rewrite, a fresh one (``onnx`` installed), or
    the file unchanged. A rewrite whose outputs on a random probe input (dynamic sides
    ``probe_side``) differ from the original's beyond float rounding is discarded (and the original
    cached in its place, so it is not tried again)."""
    cached = cache_path(sha256)
    if cached.is_file():
        return cached.read_bytes()
    try:
        import onnx
    except ImportError:
        return payload  # base install without onnx: the file runs as it is
    proto = onnx.load_from_string(payload)
    if is_quantized(proto) or merge_sibling_convs(proto) == 0:
        result = payload
    else:
        result = proto.SerializeToString()
        if not _same_outputs(payload, result, probe_side):
            import logging

            logging.getLogger(LOGGER_NAME).warning("the merged-convolution rewrite changed the outputs of this file; running it unchanged")
            result = payload
    _save(cached, result)
    return result


def is_quantized(proto: Any) -> bool:
    """QDQ / QLinear graphs are left as onnxruntime's int8 fusions expect them (``facescope quantize``
    merges the convolutions before quantising)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in proto.graph.node)


def _same_outputs(original: bytes, rewritten: bytes, probe_side: int) -> bool:
    import onnxruntime as ort

    def session(model: bytes) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    sessions = [session(original), session(rewritten)]
    graph_input = sessions[0].get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else probe_side) for i, d in enumerate(graph_input.shape)]
    probe = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    run = [s.run(None, {graph_input.name: probe}) for s in sessions]
    return all(
        a.shape == b.shape and float(np.abs(a - b).max(initial=0.0)) <= PARITY_RTOL * float(np.abs(a).max(initial=0.0)) + 1e-6
        for a, b in zip(*run)
    )


def _save(path: Path, data: bytes) -> None:
    """Cache ``data`` atomically; an unwritable cache only costs the rewrite on the next load."""
    from facescope.fileio import atomic_path

    try:
        with atomic_path(path, ".onnx.tmp") as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        import logging

        logging.getLogger(LOGGER_NAME).info("could not cache the optimised ONNX file at %s: %s", path, exc)
