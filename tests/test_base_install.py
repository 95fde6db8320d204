"""The base install (no extras) is what detection with ONNX weights needs: a fresh virtualenv with
``pip install <this checkout>`` runs ``facescope detect`` on an official ONNX file (a photo and a video with
track IDs), and a PyTorch file gets
the one-line message naming the ``[torch]`` extra. Slow (a virtualenv and a pip install)."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_base_install_detects_with_onnx_weights_and_names_the_torch_extra(tmp_path, shared_data) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & {"torch", "torchvision", "scipy", "matplotlib"}, installed

    faces_json = tmp_path / "faces.json"
    detect = subprocess.run(
        [str(env_dir / "bin" / "facescope"), "detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps",
         "--weights", str(shared_data / "weights/scrfd/scrfd_500m_kps.onnx"), "--json", str(faces_json)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert detect.returncode == 0, detect.stderr[-2000:]
    assert len(json.loads(faces_json.read_text())["faces"]) == 6  # the 6 faces of t1.jpg, as the torch path finds

    pth = subprocess.run(
        [str(env_dir / "bin" / "facescope"), "detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "retinaface_mnet025",
         "--weights", str(shared_data / "weights/retinaface/mobilenet0.25_Final.pth")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert pth.returncode == 2 and 'pip install "facescope[torch]"' in pth.stderr
    assert "Traceback" not in pth.stderr

    # a video: decoded by the base install's OpenCV, tracked without scipy (the assignment is lap's)
    make_clip = (
        "import cv2, sys\nimage = cv2.imread(sys.argv[1])[200:680, :640]\n"
        "w = cv2.VideoWriter('clip.mp4', cv2.VideoWriter_fourcc(*'mp4v'), 25, (640, 480))\n"
        "[w.write(image) for _ in range(5)]\nw.release()\n"
    )
    subprocess.run([str(python), "-c", make_clip, str(shared_data / "images/crowd/t1.jpg")], cwd=tmp_path, check=True)
    video = subprocess.run(
        [str(env_dir / "bin" / "facescope"), "detect", "clip.mp4", "--model", "scrfd_500m_kps",
         "--weights", str(shared_data / "weights/scrfd/scrfd_500m_kps.onnx"), "--json", "tracks.jsonl", "--out", "tracked.mp4"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert video.returncode == 0, video.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all(face["track_id"] >= 1 for face in records[-1]["faces"]) and records[-1]["faces"]
