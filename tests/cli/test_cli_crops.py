"""``facescope detect --crops DIR``: aligned faces written next to the detections."""

import json

import cv2
import numpy as np
import pytest

from facescope.cli import main


@pytest.mark.shared
def test_detect_writes_one_aligned_crop_per_face(shared_data, tmp_path, capsys):
    weights = shared_data / "weights/retinaface/mobilenet0.25_Final.pth"
    crops, js = tmp_path / "crops", tmp_path / "faces.json"
    code = main(["detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "retinaface_mnet025",
                 "--weights", str(weights), "--crops", str(crops), "--json", str(js), "--quiet"])  # fmt: skip
    assert code == 0
    faces = json.loads(js.read_text())["faces"]
    files = sorted(crops.glob("t1_*.png"))
    assert len(files) == len(faces) == 6  # default preset, score >= 0.5
    crop = cv2.imread(str(files[0]))
    assert crop.shape == (112, 112, 3) and crop.std() > 10  # a real picture, not an empty canvas


def test_crops_need_a_model_with_landmarks(tmp_path, capsys):
    image = tmp_path / "x.jpg"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    weights = tmp_path / "w.pth"
    from facescope.models import create_model
    from facescope.models.weights import save_state_dict

    save_state_dict(create_model("scrfd_500m"), weights)
    assert main(["detect", str(image), "--model", "scrfd_500m", "--weights", str(weights), "--crops", str(tmp_path / "c")]) == 2
    assert "--crops needs landmarks" in capsys.readouterr().err
