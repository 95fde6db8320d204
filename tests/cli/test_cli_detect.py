"""The command line, run in-process through ``facescope.cli.main`` and once as a real subprocess."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facescope.cli import main


@pytest.mark.shared
def test_detect_t1_writes_annotated_image_and_json(scrfd_onnx, shared_data, tmp_path, capsys):
    out, js = tmp_path / "annotated.jpg", tmp_path / "faces.json"
    code = main(["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_2.5g_kps",
                 "--weights", str(scrfd_onnx["scrfd_2.5g_kps"]), "--out", str(out), "--json", str(js)])
    assert code == 0
    assert "6 faces" in capsys.readouterr().out
    data = json.loads(js.read_text())
    assert len(data["faces"]) == 6 and (data["width"], data["height"]) == (1280, 886)
    assert all(len(f["box"]) == 4 and len(f["landmarks"]) == 5 for f in data["faces"])
    annotated = cv2.imread(str(out))
    assert annotated.shape == (886, 1280, 3)
    assert (annotated != cv2.imread(str(shared_data / "images/crowd/t1.jpg"))).any()


@pytest.mark.shared
def test_detect_folder_with_a_corrupt_file(scrfd_onnx, wider_val_images, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for path in wider_val_images[:2]:
        shutil.copy(path, folder / "sub" / path.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    js = tmp_path / "all.json"
    code = main(["detect", str(folder), "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]),
                 "--out", str(tmp_path / "annotated"), "--json", str(js)])
    assert code == 1  # one unreadable image
    assert "broken.jpg: not a decodable image" in capsys.readouterr().err
    records = {r["image"]: r for r in json.loads(js.read_text())["images"]}
    assert "error" in records["broken.jpg"]
    assert all(len(records[f"sub/{p.name}"]["faces"]) > 0 for p in wider_val_images[:2])
    assert len(list((tmp_path / "annotated" / "sub").glob("*.jpg"))) == 2


def test_unknown_model_and_missing_file_are_one_line_errors(tmp_path, capsys):
    image = tmp_path / "x.jpg"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    assert main(["detect", str(image), "--model", "scrfd_2.5g_kp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "facescope: error: unknown model 'scrfd_2.5g_kp' (did you mean 'scrfd_2.5g_kps'?); see `facescope models`"
    assert main(["detect", str(tmp_path / "nope.jpg")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.shared
def test_corrupt_image_and_wrong_weights_exit_non_zero(scrfd_onnx, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    assert main(["detect", str(corrupt), "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"])]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["detect", str(corrupt), "--model", "scrfd_10g_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit model 'scrfd_10g_kps'" in err and err.strip().endswith("it fits scrfd_500m_kps")
    # the torch backend imports the file into the PyTorch model and names the architecture it fits
    assert main(["detect", str(corrupt), "--model", "scrfd_10g_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--backend", "torch"]) == 2
    assert "do not fit architecture 'scrfd_10g_kps'" in capsys.readouterr().err


def test_models_and_info(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "scrfd_34g" in listing and "9,802,737" in listing and "non-commercial" in listing
    assert main(["info", "scrfd_500m", "--size", "320x240"]) == 0
    info = capsys.readouterr().out
    assert "572,741" in info and "0.5087 at 640x480" in info and "at 320x240" in info


def test_console_script_runs_as_subprocess():
    result = subprocess.run([sys.executable, "-m", "facescope", "info", "scrfd_500m_kps"], capture_output=True, text=True)
    assert result.returncode == 0 and "631,410" in result.stdout
