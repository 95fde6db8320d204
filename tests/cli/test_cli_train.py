"""``facescope train``: overrides anywhere after the recipe, and every bad input answered in one line
(exit code 2) before any work, with nothing written."""

import re
from pathlib import Path

import pytest

from facescope.cli import main

REPO = Path(__file__).resolve().parents[2]
RECIPE = """model: scrfd_500m_kps
data:
  train_annotations: train.jsonl
  train_images: images
  format: jsonl
  image_size: 64
  batch_size: 2
  workers: 0
optim:
  lr: 0.01
  warmup_iters: 2
  milestones: [3]
  epochs: 4
runtime:
  out_dir: run
  device: cpu
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture
def captured_fit(monkeypatch):
    """Replace the training loop: record what the command line asked for."""
    calls = []

    def fake_fit(config, resume=None, progress=True):
        calls.append({"config": config, "resume": resume, "progress": progress})
        return Path(config.runtime.out_dir) / "last.pth"

    monkeypatch.setattr("facescope.engine.trainer.fit", fake_fit)
    return calls


def test_overrides_are_accepted_before_between_and_after_options(recipe, tmp_path, captured_fit):
    argv = ["train", str(recipe), "optim.lr=0.02", "--data-root", str(tmp_path / "root"), "data.batch_size=4",
            "--out", str(tmp_path / "o"), "--resume", "runtime.max_iters=5"]
    assert main(argv) == 0
    (call,) = captured_fit
    config = call["config"]
    assert (config.optim.lr, config.data.batch_size, config.runtime.max_iters) == (0.02, 4, 5)
    assert config.runtime.out_dir == str(tmp_path / "o") and call["resume"] == "auto"
    assert config.data.train_annotations == str(tmp_path / "root" / "train.jsonl")


def test_options_before_the_recipe_and_a_resume_path(recipe, tmp_path, captured_fit):
    assert main(["train", "--no-progress", str(recipe), "--resume", str(recipe), "data.workers=1"]) == 0
    (call,) = captured_fit
    assert call["resume"] == str(recipe) and call["progress"] is False and call["config"].data.workers == 1


BAD_OVERRIDES = [
    ("optim.lrr=0.1", r"override 'optim.lrr=0.1': unknown key 'lrr' in optim \(did you mean 'lr'\?\)"),
    ("optimm.lr=0.1", r"override 'optimm.lr=0.1': unknown key 'optimm' \(did you mean 'optim'\?\)"),
    ("optim.lr.x=1", r"override 'optim.lr.x=1': 'optim.lr' is not a section"),
    ("data.batch_size=four", r"override 'data.batch_size=four': 'data.batch_size' must be int, got 'four'"),
    ("optim.lr=-0.1", r"override 'optim.lr=-0.1': 'optim.lr' must be > 0, got -0.1"),
    ("optim.lr=0", r"override 'optim.lr=0': 'optim.lr' must be > 0, got 0.0"),
    ("data.batch_size=0", r"override 'data.batch_size=0': 'data.batch_size' must be >= 1, got 0"),
    ("data.workers=-1", r"override 'data.workers=-1': 'data.workers' must be >= 0, got -1"),
    ("runtime.max_iters=0", r"override 'runtime.max_iters=0': 'runtime.max_iters' must be >= 1 \(or null: no limit\), got 0"),
    ("optim.epochs=0", r"override 'optim.epochs=0': 'optim.epochs' must be >= 1, got 0"),
    ("data.image_size=-64", r"'data.image_size' must be a positive number of pixels, got -64"),
    ("runtime.device=gpu", r"'runtime.device' must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("data.pipeline=scrfdd", r"override 'data.pipeline=scrfdd': 'data.pipeline' must be one of \[[^]]*'scrfd'[^]]*\] \(registered names\), got 'scrfdd' \(did you mean 'scrfd'\?\)"),
    ("data.pipeline=retinaface", r"'data.crop_scales' must be <= 1 for data.pipeline 'retinaface' \(it crops inside the image\)"),
    ("data.sampler=shardd", r"'data.sampler' must be one of \[.*'sharded'.*got 'shardd' \(did you mean 'sharded'\?\)"),
    ("data.sampler_options={a: 1}", r"'data.sampler_options' do not fit sampler 'sharded': sampler 'sharded' takes no options"),
    ("optim.param_groups=[{pattern: 'x', lr_mul: 2}]", r"unknown key 'optim.param_groups\[0\].lr_mul' \(did you mean 'lr_mult'\?\)"),
    ("optim.param_groups=[{pattern: 'x', lr_mult: 0}]", r"'optim.param_groups\[0\].lr_mult' must be > 0"),
    ("optim.lr", r"argument 'optim.lr' is neither an option nor a recipe override key.sub=value"),
]


@pytest.mark.parametrize("override, message", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_is_one_line_naming_the_argument(recipe, tmp_path, capsys, override, message):
    out = tmp_path / "never"
    assert main(["train", str(recipe), "--out", str(out), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facescope: error: ") and "\n" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_bad_value_in_the_recipe_names_file_and_line(recipe, tmp_path, capsys):
    recipe.write_text(RECIPE.replace("  lr: 0.01", "  lr: -1"))
    out = tmp_path / "never"
    assert main(["train", str(recipe), "--out", str(out)]) == 2
    assert f"{recipe}:10: 'optim.lr' must be > 0, got -1.0" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.image_size=100", "data.image_size must be a multiple of 32 for scrfd_500m_kps"),
        ("optim.param_groups=[{pattern: 'body.*', frozen: true}]",
         "optim.param_groups[0] (pattern 'body.*') matches no parameter of scrfd_500m_kps; parameter names look like"),
    ],
    ids=["image_size_vs_stride", "param_rule_matching_nothing"],
)
def test_model_dependent_checks_fail_before_reading_data(recipe, tmp_path, capsys, override, message):
    out = tmp_path / "never"  # the recipe's data paths do not exist: these checks come first
    assert main(["train", str(recipe), "--out", str(out), override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_recipe_and_unknown_option(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert f"config file not found: {tmp_path / 'nope.yaml'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(tmp_path / "nope.yaml"), "--data-roott", "x"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --data-roott" in capsys.readouterr().err


def test_bad_resume_checkpoint_writes_nothing(recipe, tmp_path, capsys, tiny_jsonl):
    out = tmp_path / "never"
    argv = ["train", str(recipe), "--data-root", str(tiny_jsonl), "--out", str(out), "--resume", str(tmp_path / "missing.pth")]
    assert main(argv) == 2
    assert f"checkpoint not found: {tmp_path / 'missing.pth'}" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def tiny_jsonl(tmp_path):
    import json

    import cv2
    import numpy as np

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    image = np.full((64, 64, 3), 90, np.uint8)
    cv2.imwrite(str(root / "images" / "a.png"), image)
    (root / "train.jsonl").write_text(json.dumps({"image": "a.png", "faces": [{"box": [10, 10, 40, 40]}]}) + "\n")
    return root


@pytest.mark.shared
def test_readme_short_run_on_the_shared_images(shared_data, tmp_path, capsys):
    """The README's "a short run" example, on the 38 real WIDER val images (smaller crops: CPU time)."""
    recipe = REPO / "benchmarks/configs/wider38_scrfd_500m_kps.yaml"
    out = tmp_path / "run"
    argv = ["train", str(recipe), "--data-root", str(shared_data), "--no-progress", "--out", str(out),
            "runtime.max_iters=2", "data.batch_size=2", "data.image_size=320", "data.workers=0"]
    assert main(argv) == 0
    assert f"last checkpoint {out / 'last.pth'}" in capsys.readouterr().out
    import torch

    assert torch.load(out / "last.pth", weights_only=True)["global_step"] == 2
