"""Every class of bad command-line input ends in a one-line message and a non-zero exit code,
before any work, with nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facescope.cli import main


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), np.full((48, 64, 3), 90, np.uint8))
    return path


def _argparse_error(argv: list[str], capsys) -> str:
    """argparse refuses: exit code 2, the last stderr line names the option and the value."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--score-thresh", "2", "argument --score-thresh: must be in [0, 1], got 2.0"),
        ("--score-thresh", "nan", "argument --score-thresh: must be in [0, 1], got nan"),
        ("--score-thresh", "high", "argument --score-thresh: expected a number in [0, 1], got 'high'"),
        ("--nms-thresh", "-0.1", "argument --nms-thresh: must be in [0, 1], got -0.1"),
        ("--input-size", "0", "argument --input-size: size must be >= 1, got 0"),
        ("--input-size", "-5", "argument --input-size: size must be >= 1, got -5"),
        ("--input-size", "100000x100000", "argument --input-size: size width must be <= 16384, got 100000"),
        ("--input-size", "640x", "argument --input-size: invalid size '640x': use 640, 1280x720 (width x height), original or long:640"),
        ("--threads", "0", "argument --threads: must be >= 1, got 0"),
        ("--crop-size", "0", "argument --crop-size: must be >= 1, got 0"),
        ("--max-pixels", "-3", "argument --max-pixels: must be >= 1 pixel, got '-3'"),
    ],
)
def test_detect_numeric_options_are_range_checked(option, value, words, image, tmp_path, capsys) -> None:
    before = _snapshot(tmp_path)
    assert _argparse_error(["detect", str(image), f"{option}={value}", "--json", str(tmp_path / "f.json")], capsys).endswith(words)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "argv, words",
    [
        (["info", "scrfd_500m_kps", "--size", "0x0"], "argument --size: size width must be >= 1, got 0"),
        (["info", "scrfd_500m_kps", "--size=-5"], "argument --size: size must be >= 1, got -5"),
        (["info", "scrfd_500m_kps", "--size", "100000x100000"], "argument --size: size width must be <= 16384, got 100000"),
        (["export", "scrfd_500m_kps", "--out", "x.onnx", "--input-size", "original"], "a concrete size is needed here"),
        (["export", "scrfd_500m_kps", "--out", "x.onnx", "--tolerance", "-1"], "argument --tolerance: must be a number > 0"),
        (["export", "scrfd_500m_kps", "--out", "x.onnx", "--opset", "0"], "argument --opset: must be >= 1, got 0"),
        (["eval", "widerface", "--gt", "g", "--predictions", "p", "--score-thresh", "1.5"], "must be in [0, 1], got 1.5"),
        (["eval", "fddb", "--ellipses", "e", "--images", "i", "--input-size", "0"], "size must be >= 1, got 0"),
    ],
)
def test_other_commands_range_check_sizes_and_numbers(argv, words, capsys) -> None:
    assert words in _argparse_error(argv, capsys)


def test_info_size_over_the_memory_budget_is_refused_before_the_forward_pass(capsys, monkeypatch) -> None:
    monkeypatch.setenv("FACESCOPE_MEMORY_BUDGET", "1G")
    assert main(["info", "scrfd_500m_kps", "--size", "8000x8000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facescope: error: --size 8000x8000 needs an estimated 5.8 GiB")
    assert err.endswith("over the memory budget of 1.0 GiB; use a smaller size or raise FACESCOPE_MEMORY_BUDGET")


def test_input_size_over_the_memory_budget_is_refused_before_weights_load(image, tmp_path, capsys) -> None:
    before = _snapshot(tmp_path)
    code = main(["detect", str(image), "--input-size", "16000x16000", "--weights", str(tmp_path / "absent.onnx"),
                 "--json", str(tmp_path / "faces.json")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facescope: error: input size 16000x16000 needs an estimated") and "memory budget of 8.0 GiB" in err
    assert _snapshot(tmp_path) == before


def test_unavailable_device_names_the_available_ones(image, tmp_path, capsys, monkeypatch) -> None:
    from facescope.inference import validate

    monkeypatch.setattr(validate, "available_devices", lambda backend=None: ["cpu"])
    assert main(["detect", str(image), "--device", "cuda", "--weights", str(tmp_path / "absent.onnx")]) == 2
    assert capsys.readouterr().err.strip() == "facescope: error: device 'cuda' is not available here; available: cpu"
    assert main(["detect", str(image), "--device", "gpu"]) == 2
    assert capsys.readouterr().err.strip() == "facescope: error: unknown device 'gpu'; use cpu, cuda, cuda:N or mps"


def _out_cases(tmp_path: Path, image: Path) -> list[tuple[list[str], str]]:
    folder = tmp_path / "existing_folder"
    folder.mkdir()
    return [
        (["--out", str(folder)], f"--out {folder} is a folder; for one image give a file name such as {folder / 'photo.jpg'}"),
        (["--out", str(tmp_path / "annotated")], "has no image extension; use e.g."),
        (["--out", str(tmp_path / "annotated.xyz")], "OpenCV cannot write '.xyz' images"),
        (["--out", str(tmp_path / "missing" / "a.jpg")], f"folder {tmp_path / 'missing'} does not exist; create it first"),
        (["--out", str(image)], "is the source image; it would be overwritten"),
        (["--json", str(folder)], f"--json {folder} is a folder; give a file name such as"),
        (["--json", str(tmp_path / "missing" / "f.json")], "does not exist; create it first"),
        (["--json", str(image)], "--json"),
        (["--crops", str(image)], "is a file; it must be a folder (created if missing)"),
        (["--crops", str(image / "crops")], f"--crops {image / 'crops'}: {image} is a file, not a folder"),
    ]


def test_output_paths_are_checked_before_detection(image, tmp_path, capsys) -> None:
    weights = str(tmp_path / "absent.onnx")  # reaching the detector would fail differently
    for extra, words in _out_cases(tmp_path, image):
        before = _snapshot(tmp_path)
        assert main(["detect", str(image), "--weights", weights, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("facescope: error: ") and words in err and "\n" not in err, (extra, err)
        assert _snapshot(tmp_path) == before


def test_folder_source_needs_a_folder_for_out(image, tmp_path, capsys) -> None:
    target = tmp_path / "annotated.jpg"
    target.write_bytes(b"x")
    assert main(["detect", str(tmp_path), "--out", str(target), "--weights", str(tmp_path / "absent.onnx")]) == 2
    assert f"--out {target} is a file; it must be a folder" in capsys.readouterr().err


def test_a_genuine_bug_still_shows_a_traceback(image, monkeypatch) -> None:
    """Only FacescopeError is turned into a message: anything else is a bug and must surface."""
    import facescope.cli.detect as detect

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(detect, "check_detect_paths", broken)
    with pytest.raises(ZeroDivisionError):
        main(["detect", str(image)])


def test_bad_input_in_a_real_process_prints_no_traceback(image, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run(
        [sys.executable, "-m", "facescope", "detect", str(image), "--out", str(tmp_path / "nope" / "a.jpg")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip() == f"facescope: error: --out {tmp_path / 'nope' / 'a.jpg'}: folder {tmp_path / 'nope'} does not exist; create it first"


def test_export_and_eval_outputs_are_checked_before_work(tmp_path, capsys) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    before = _snapshot(tmp_path)
    cases = [
        (["export", "scrfd_500m_kps", "--out", str(folder)], f"--out {folder} must end in .onnx"),
        (["export", "scrfd_500m_kps", "--out", str(folder / "m.onnx" / "x.onnx")], "does not exist; create it first"),
        (["export", "scrfd_500m_kps", "--out", str(tmp_path / "missing" / "m.onnx")], "does not exist; create it first"),
        (["eval", "widerface", "--predictions", "p", "--gt", "g", "--out", str(a_file)], f"--out {a_file} is a file; it must be a folder"),
        (["eval", "fddb", "--ellipses", "e", "--images", "i", "--out", str(a_file)], "is a file; it must be a folder"),
        (["eval", "landmarks", "--labels", "l", "--images", "i", "--out", str(a_file / "out")], "is a file, not a folder"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("facescope: error: ") and words in err and "\n" not in err, (argv, err)
    assert _snapshot(tmp_path) == before


def test_models_pattern_that_matches_nothing(capsys) -> None:
    assert main(["models", "zzz*"]) == 2
    assert capsys.readouterr().err.strip() == "facescope: error: no registered model matches 'zzz*'; `facescope models` lists them all"


@pytest.mark.shared
def test_one_face_is_singular(shared_data, scrfd_onnx, capsys) -> None:
    from facescope.structures import count_noun

    assert (count_noun(0, "face"), count_noun(1, "face"), count_noun(6, "face")) == ("0 faces", "1 face", "6 faces")
    code = main(["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps",
                 "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--score-thresh", "0.875"])
    assert code == 0  # scores on t1: 0.8795, 0.8730, ...: exactly one face passes 0.875
    out = capsys.readouterr().out
    assert "t1.jpg: 1 face (" in out and len([line for line in out.splitlines() if line.startswith("  0: box")]) == 1
