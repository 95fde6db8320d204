"""ONNX export: layout, metadata, parity with eager PyTorch for every registered model, failures."""

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from facescope.cli import main
from facescope.export import ExportError, export_onnx, output_names, verify_export
from facescope.export.onnx import DenseExportGraph, _check_inputs, normalised_batch, synthetic_scene
from facescope.models import create_model
from facescope.models.layers import Scale
from registry_params import every_model

REGISTRY = every_model()  # the heavy models (seconds each) run under `pytest -m slow`


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights with O(1) outputs everywhere (the official init gives near-constant outputs,
    against which a parity check proves little): random convs and affine norms, then BatchNorm
    statistics calibrated on synthetic scenes so every BN really normalises."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor: torch.Tensor, low: float, high: float) -> None:
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    uniform(module.bias, -0.2, 0.2)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                uniform(module.weight, 0.5, 1.5)
                uniform(module.bias, -0.2, 0.2)
                if isinstance(module, nn.BatchNorm2d):
                    module.reset_running_stats()
                    module.momentum = None  # cumulative average over the calibration pass
            elif isinstance(module, Scale):
                uniform(module.scale, 0.5, 1.5)
        model.train()
        model(normalised_batch([synthetic_scene(128, 128, seed=s) for s in range(4)], model))
    return model.eval()


def float32_rounding_error(model: nn.Module, batch: torch.Tensor) -> float:
    """How far eager float32 PyTorch itself is from float64 on ``batch``: the noise floor of any parity check."""
    with torch.no_grad():
        single = DenseExportGraph(model)(batch)
        double = DenseExportGraph(copy.deepcopy(model).double())(batch.double())
    return max(float((a.double() - b).abs().max()) for a, b in zip(single, double))


@pytest.mark.parametrize("name", REGISTRY)
def test_every_registered_model_exports_with_parity(name, tmp_path):
    model = randomise(create_model(name))
    # Random weights are less well conditioned than trained ones (official SCRFD-500M-kps: < 1e-5; a
    # randomised ResNet-152 reaches 0.35 between float32 and float64), so each check's bound is the float32
    # rounding of eager PyTorch itself on that same input: the export adds no error of its own.
    inputs = _check_inputs(model, (128, 128), True, None)
    bounds = [max(4 * float32_rounding_error(model, batch), 1e-5) for batch in inputs]
    result = export_onnx(model, tmp_path / f"{name}.onnx", model_name=name, input_size=128, tolerance=max(*bounds, 0.1))
    assert [c.input_shape for c in result.checks] == [tuple(b.shape) for b in inputs]
    first, second = (c.input_shape for c in result.checks)
    assert first == (1, 3, 128, 128) and second[:2] == (2, 3) and second[2] != 128  # dynamic batch and height
    for check, bound in zip(result.checks, bounds):
        assert check.max_abs_diff <= bound, (check, bound)
    # the outputs carry signal: probabilities spread over (0, 1), regressions of order 1
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    outputs = dict(zip(result.output_names, session.run(None, {"input": normalised_batch([synthetic_scene(64, 96)], model).numpy()})))
    scores = np.concatenate([outputs[n].ravel() for n in result.output_names if n.startswith("score_")])
    assert scores.min() >= 0 and scores.max() <= 1 and scores.std() > 0.05
    assert max(np.abs(outputs[n]).max() for n in result.output_names if n.startswith("bbox_")) > 0.5


def test_layout_metadata_and_dynamic_axes(tmp_path):
    model = randomise(create_model("scrfd_500m_kps"))
    path = tmp_path / "m.onnx"
    result = export_onnx(model, path, model_name="scrfd_500m_kps", input_size=(96, 64), opset=18)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 18
    names = ["score_8", "score_16", "score_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32"]
    assert [o.name for o in proto.graph.output] == names == output_names(model) == result.output_names
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["facescope_model"] == "scrfd_500m_kps" and meta["facescope_family"] == "scrfd"
    assert json.loads(meta["facescope_strides"]) == [8, 16, 32]
    assert json.loads(meta["facescope_anchors_per_level"]) == [2, 2, 2]
    assert json.loads(meta["facescope_input_spec"]) == {"mean": [127.5] * 3, "std": [128.0] * 3, "color": "rgb", "size_divisor": 32}
    assert json.loads(meta["facescope_export_input_hw"]) == [64, 96]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # batch 3 at 160x224 (H x W): N_s = ceil(160/s) * ceil(224/s) * 2
    outs = session.run(None, {"input": np.zeros((3, 3, 160, 224), np.float32)})
    assert [o.shape for o in outs[:3]] == [(3, 20 * 28 * 2, 1), (3, 10 * 14 * 2, 1), (3, 5 * 7 * 2, 1)]
    assert outs[3].shape == (3, 1120, 4) and outs[8].shape == (3, 70, 10)


def test_static_export_has_fixed_shape(tmp_path):
    model = randomise(create_model("scrfd_500m_kps"))
    result = export_onnx(model, tmp_path / "s.onnx", input_size=(96, 64), dynamic=False)
    assert len(result.checks) == 1
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 64, 96]
    assert session.get_outputs()[0].shape == [1, 8 * 12 * 2, 1]


def test_parity_failure_is_loud_and_writes_nothing(tmp_path):
    exported = randomise(create_model("scrfd_500m_kps"), seed=1)
    path = tmp_path / "m.onnx"
    export_onnx(exported, path, input_size=64)
    other = randomise(create_model("scrfd_500m_kps"), seed=2)
    batch = normalised_batch([synthetic_scene(64, 64)], other)
    with pytest.raises(ExportError, match=r"onnxruntime differs from PyTorch by .* \(> tolerance 0.001\)"):
        verify_export(other, path, [batch])
    with pytest.raises(ExportError, match="opset 16 is too old"):
        export_onnx(exported, tmp_path / "old.onnx", opset=16)
    with pytest.raises(ExportError, match="multiples of 32"):
        export_onnx(exported, tmp_path / "odd.onnx", input_size=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no partial or temp files


def test_simplify_without_onnxsim_says_how_to_install(tmp_path):
    pytest.importorskip("onnx", reason="onnx is a dependency")
    try:
        import onnxsim  # noqa: F401
    except ImportError:
        with pytest.raises(ExportError, match="pip install onnxsim"):
            export_onnx(create_model("scrfd_500m_kps"), tmp_path / "m.onnx", input_size=64, simplify=True)
    else:
        result = export_onnx(randomise(create_model("scrfd_500m_kps")), tmp_path / "m.onnx", input_size=64, simplify=True)
        assert result.simplified and result.max_abs_diff <= 1e-4


def test_cli_export_prints_the_parity_and_rejects_bad_options(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "scrfd_500m_kps", "--out", str(out), "--input-size", "64"]) == 0
    text = capsys.readouterr().out
    assert "randomly initialised" in text and "input 1x3x64x64: max abs diff" in text and "parity ok" in text
    assert out.exists()
    assert main(["export", "scrfd_500m_kps", "--out", str(out), "--opset", "11"]) == 2
    assert "opset 11 is too old" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # refused by the argument type, before any work
        main(["export", "scrfd_500m_kps", "--out", str(out), "--input-size", "original"])
    assert exit_info.value.code == 2
    assert "a concrete size is needed here" in capsys.readouterr().err


def test_deformable_convolutions_export_as_onnx_deform_conv(tmp_path):
    model = randomise(create_model("retinaface_paper_r50"))
    # (randomised weights: parity within the float32 noise of this deep random network, see above)
    result = export_onnx(model, tmp_path / "dcn.onnx", model_name="retinaface_paper_r50", input_size=128, tolerance=0.1)
    proto = onnx.load(str(result.path))
    assert result.opset == 19 and any(node.op_type == "DeformConv" for node in proto.graph.node)
    with pytest.raises(ExportError, match="deformable convolutions, which need opset >= 19"):
        export_onnx(model, tmp_path / "old.onnx", model_name="x", input_size=128, opset=18)
