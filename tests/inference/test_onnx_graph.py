"""The exact ONNX rewrite of the onnxruntime backend (sibling convolutions merged) and its cache."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facescope.inference.onnx_graph import cache_path, merge_sibling_convs, optimized_model_bytes


def _run(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def _toy_graph(opset: int) -> onnx.ModelProto:
    """x -> three 3x3 convs (2, 8 and 20 outputs, two with bias, one without), a 3x3 stride-2 conv
    and a 1x1 conv on the same input: only the three alike are merged."""
    rng = np.random.default_rng(0)
    inits, nodes, outputs = [], [], []
    for name, out, kernel, stride, bias in [("cls", 2, 3, 1, True), ("box", 8, 3, 1, True), ("kps", 20, 3, 1, False), ("down", 4, 3, 2, True), ("pw", 4, 1, 1, True)]:
        inits.append(numpy_helper.from_array(rng.normal(size=(out, 6, kernel, kernel)).astype(np.float32), f"{name}.w"))
        inputs = ["x", f"{name}.w"]
        if bias:
            inits.append(numpy_helper.from_array(rng.normal(size=out).astype(np.float32), f"{name}.b"))
            inputs.append(f"{name}.b")
        pad = kernel // 2
        nodes.append(helper.make_node("Conv", inputs, [f"{name}.y"], name=name, pads=[pad] * 4, strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"{name}.y"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, out, None, None]))
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, None, None])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [11, 17])  # Split's sizes: an attribute before opset 13, an input since
def test_merge_sibling_convs_keeps_every_output(opset):
    model = _toy_graph(opset)
    original = model.SerializeToString()
    assert merge_sibling_convs(model) == 2  # three convolutions became one
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node].count("Conv") == 3 and "Split" in [n.op_type for n in model.graph.node]
    x = np.random.default_rng(1).normal(size=(1, 6, 13, 17)).astype(np.float32)
    for got, want in zip(_run(model.SerializeToString(), x), _run(original, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert merge_sibling_convs(model) == 0  # nothing left to merge


@pytest.mark.shared
def test_official_scrfd_heads_merged_exactly_and_cached(scrfd_onnx, isolated_home):
    payload = scrfd_onnx["scrfd_500m_kps"].read_bytes()
    model = onnx.load_from_string(payload)
    # per level, the 2-, 8- and 20-channel head convolutions read one tower output: 3 x (3 -> 1)
    assert merge_sibling_convs(model) == 6
    import hashlib

    sha = hashlib.sha256(payload).hexdigest()
    optimised = optimized_model_bytes(payload, sha)
    assert cache_path(sha).read_bytes() == optimised and str(isolated_home) in str(cache_path(sha))
    x = np.random.default_rng(2).normal(size=(1, 3, 96, 160)).astype(np.float32)
    for got, want in zip(_run(optimised, x), _run(payload, x)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert optimized_model_bytes(b"not read again: the cache answers", sha) == optimised


@pytest.mark.shared
def test_more_than_one_thread_turns_spinning_off(scrfd_onnx):
    """Idle onnxruntime pool threads sleep rather than spin when the session has several threads."""
    from facescope.inference.backends import OnnxRuntimeBackend
    from facescope.models.registry import get_model_entry

    entry = get_model_entry("scrfd_500m_kps")
    options = OnnxRuntimeBackend(scrfd_onnx["scrfd_500m_kps"], entry, threads=2).session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    single = OnnxRuntimeBackend(scrfd_onnx["scrfd_500m_kps"], entry, threads=1).session.get_session_options()
    with pytest.raises(Exception, match="allow_spinning"):  # not set: onnxruntime's default (spinning) for one thread
        single.get_session_config_entry("session.intra_op.allow_spinning")
