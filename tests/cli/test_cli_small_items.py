"""The smaller edges of issue 23: foreign weight files, fixed-size ONNX hints, files of unknown
architecture, random weights, TTA and training summaries, benchmark thresholds on photos."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from facescope.cli import main

pytestmark = pytest.mark.shared


def test_a_tflite_file_is_refused_in_one_line_without_pytorch_advice(tmp_path, shared_data, capsys):
    tflite = tmp_path / "face_detection_short_range.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))  # a TensorFlow Lite flatbuffer's header
    assert main(["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps", "--weights", str(tflite)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "a TensorFlow Lite model; facescope reads .onnx files and PyTorch checkpoints" in err
    assert "weights_only" not in err


def test_a_known_release_names_its_model_and_an_unknown_file_needs_model(tmp_path, shared_data, scrfd_onnx, capsys):
    image = str(shared_data / "images/crowd/t1.jpg")
    faces = tmp_path / "faces.json"
    assert main(["detect", image, "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--json", str(faces)]) == 0
    out = capsys.readouterr().out
    assert json.loads(faces.read_text())["model"] == "scrfd_500m_kps" and "scrfd_500m_kps (scrfd_500m_kps.onnx)" in out
    assert "weights licence: insightface model zoo: non-commercial research purposes only" in out  # not permissive: said
    # the static-640 file is no registered release: its shapes fit SCRFD and RetinaFace alike
    assert main(["detect", image, "--weights", str(scrfd_onnx["scrfd_500m_kps_static640"])]) == 2
    assert "its architecture is unknown; name it with --model" in capsys.readouterr().err
    assert main(["detect", image, "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps_static640"]),
                 "--json", str(faces)]) == 0  # fmt: skip
    assert json.loads(faces.read_text())["model"] == "scrfd_500m_kps"
    assert main(["detect", image, "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps_static640"]),
                 "--input-size", "320"]) == 2  # fmt: skip
    assert "use --input-size 640 (Python: input_size=640)" in capsys.readouterr().err


def test_default_model_summary_names_no_licence(shared_data, capsys):
    assert main(["detect", str(shared_data / "images/crowd/t1.jpg")]) == 0
    out = capsys.readouterr().out
    assert "retinaface_mnet025 (retinaface_mnet025.onnx) [onnxruntime]" in out and "licence" not in out


def test_random_weights_warn_and_loaded_or_trained_ones_do_not():
    from facescope.inference.detector import Detector
    from facescope.models.registry import create_model

    with pytest.warns(UserWarning, match="randomly initialised weights"):
        Detector(create_model("retinaface_mnet025"))
    model = create_model("retinaface_mnet025")
    model.load_state_dict(create_model("retinaface_mnet025").state_dict())  # loaded by hand
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Detector(model)


def test_tta_summary_names_the_protocol_sizes_not_the_letterbox(shared_data, scrfd_onnx):
    from facescope.inference.detector import Detector

    described = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], tta="multiscale").describe()
    assert "TTA 'multiscale' passes at the protocol's scales (relative to longer side 640, aspect kept)" in described  # SCRFD's default: long:640
    assert ": letterbox 640x640" not in described


def test_benchmark_preset_on_a_photo_says_why_it_keeps_low_scores(tmp_path, shared_data, capsys):
    args = ["detect", str(shared_data / "images/crowd/t1.jpg"), "--preset", "official", "--crops", str(tmp_path / "faces"), "--quiet"]
    assert main(args) == 0
    assert "keeps the benchmark score threshold 0.02" in capsys.readouterr().err
    assert main([*args[:-1], "--score-thresh", "0.5", "--quiet"]) == 0
    assert "benchmark score threshold" not in capsys.readouterr().err


def test_training_summary_is_printed_once_and_says_finished(monkeypatch, tmp_path, capsys):
    import facescope.engine.trainer as trainer

    monkeypatch.setattr(trainer, "fit", lambda config, resume=None, progress=True: tmp_path / "last.pth")
    recipe = ["train", str(Path(__file__).resolve().parents[2] / "configs/scrfd_500m_kps.yaml"), "--data-root", str(tmp_path), "--out", str(tmp_path / "run")]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(recipe) == 0 and capsys.readouterr().out == ""  # rank 1 says nothing
    monkeypatch.setenv("RANK", "0")
    assert main(recipe) == 0
    assert capsys.readouterr().out.strip() == f"facescope: training finished; last checkpoint {tmp_path / 'last.pth'}"
