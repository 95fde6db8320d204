"""Acceptance of issue 17 item 1: a model trained with a non-default builder option is rebuilt from its
checkpoint by Detector, `facescope detect`, `facescope export` and `facescope info` without the option
being repeated, and the option given with another value is refused naming both."""

import json
import time

import cv2
import numpy as np
import onnx
import pytest

from facescope.cli import main
from facescope.errors import WeightsError
from facescope.inference.detector import Detector

RECIPE = """model: retinaface_paper_r50
model_args:
  deformable: true
data:
  train_annotations: train.jsonl
  train_images: .
  format: jsonl
  pipeline: retinaface
  crop_scales: [1.0]
  image_size: 128
  batch_size: 2
  workers: 0
optim:
  warmup_iters: 0
  epochs: 1
runtime:
  out_dir: run
  device: cpu
  amp: false
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One iteration of retinaface_paper_r50 with deformable=false (the recipe says true: the override wins)."""
    root = tmp_path_factory.mktemp("r50")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):
        image = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
        cv2.rectangle(image, (30, 30), (80, 80), (0, 0, 255), -1)
        cv2.imwrite(str(root / f"{i}.png"), image)
        lines.append(json.dumps({"image": f"{i}.png", "faces": [{"box": [30, 30, 80, 80]}]}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    (root / "recipe.yaml").write_text(RECIPE)
    start = time.perf_counter()
    code = main(["train", str(root / "recipe.yaml"), "--data-root", str(root), "--out", str(root / "run"),
                 "--no-progress", "model_args.deformable=false", "runtime.max_iters=1"])
    assert code == 0 and time.perf_counter() - start < 120
    return root


def test_the_checkpoint_records_the_option(trained):
    import torch

    payload = torch.load(trained / "run" / "last.pth", weights_only=True)
    assert payload["model_args"] == {"deformable": False, "mesh_topology": None} and payload["global_step"] == 1


def test_detector_and_detect_rebuild_it_without_the_option(trained, tmp_path, capsys):
    detector = Detector("retinaface_paper_r50", trained / "run" / "last.pth")
    assert detector.model.model_args["deformable"] is False and detector.model_args["deformable"] is False
    assert not any("Deform" in type(m).__name__ for m in detector.model.modules())
    faces = detector.detect(trained / "0.png")
    assert faces.boxes.shape[1] == 4
    out = tmp_path / "faces.json"
    assert main(["detect", str(trained / "0.png"), "--model", "retinaface_paper_r50", "--weights",
                 str(trained / "run" / "last.pth"), "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["model"] == "retinaface_paper_r50"


def test_the_option_given_wrongly_is_refused_naming_both(trained, capsys):
    checkpoint = trained / "run" / "last.pth"
    with pytest.raises(WeightsError, match=r"last.pth was built with model option deformable=False, but deformable=True was given"):
        Detector("retinaface_paper_r50", checkpoint, model_args={"deformable": True})
    Detector("retinaface_paper_r50", checkpoint, model_args={"deformable": False})  # the same value is fine
    for command in (["detect", str(trained / "0.png"), "--model", "retinaface_paper_r50", "--weights", str(checkpoint)],
                    ["info", "retinaface_paper_r50", "--weights", str(checkpoint)]):
        capsys.readouterr()
        assert main([*command, "--model-arg", "deformable=true"]) == 2
        assert "deformable=False, but deformable=True was given" in capsys.readouterr().err


def test_info_shows_and_uses_the_recorded_options(trained, capsys):
    assert main(["info", "retinaface_paper_r50", "--weights", str(trained / "run" / "last.pth")]) == 0
    text = capsys.readouterr().out
    assert "options    : deformable=False, mesh_topology=None" in text
    fresh = main(["info", "retinaface_paper_r50"]) == 0 and capsys.readouterr().out
    params = [line for text_ in (text, fresh) for line in text_.splitlines() if "parameters" in line]
    assert params[0] != params[1]  # deformable convs have offset branches: the checkpoint's model is smaller


def test_export_carries_the_options_into_the_onnx_file(trained, tmp_path, capsys):
    out = tmp_path / "r50.onnx"
    assert main(["export", "retinaface_paper_r50", "--weights", str(trained / "run" / "last.pth"), "--out", str(out),
                 "--input-size", "128", "--no-dynamic"]) == 0
    assert "model options: deformable=False, mesh_topology=None" in capsys.readouterr().out
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata["facescope_model_args"]) == {"deformable": False, "mesh_topology": None}
    detector = Detector("retinaface_paper_r50", out, input_size=128)  # onnxruntime: checked without torch's builder
    assert detector.backend.name == "onnxruntime" and detector.model_args["deformable"] is False
    with pytest.raises(WeightsError, match="deformable=False, but deformable=True was given"):
        Detector("retinaface_paper_r50", out, input_size=128, model_args={"deformable": "true"})


def test_bad_model_arg_options_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "scrfd_500m", "--model-arg", "deformable"])
    assert exit_info.value.code == 2 and "argument --model-arg: model option 'deformable' must look like KEY=VALUE" in capsys.readouterr().err
    assert main(["info", "retinaface_paper_r50", "--model-arg", "deformable=1", "--model-arg", "deformable=0"]) == 2
    assert "--model-arg deformable is given twice ('1' and '0')" in capsys.readouterr().err
    assert main(["info", "retinaface_paper_r50", "--model-arg", "deformabel=false"]) == 2
    assert "does not accept 'deformabel' (did you mean 'deformable'?)" in capsys.readouterr().err
