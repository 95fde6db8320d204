"""The base install (no extras) is what detection with ONNX weights needs: a fresh virtualenv with
``pip install <this checkout>`` runs ``facescope detect`` on an official ONNX file, and a PyTorch file gets
the one-line message naming the ``[torch]`` extra, and ``facescope serve`` the one naming ``[serve]``.
Slow (a virtualenv and a pip install)."""

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
    assert not installed & {"torch", "torchvision", "scipy", "matplotlib", "fastapi", "uvicorn", "ray"}, installed

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

    serve = subprocess.run([str(env_dir / "bin" / "facescope"), "serve", "--port", "8080"], capture_output=True, text=True, cwd=tmp_path)
    assert serve.returncode == 2 and serve.stderr.strip().endswith('pip install "facescope[serve]"')
    assert len(serve.stderr.strip().splitlines()) == 1
