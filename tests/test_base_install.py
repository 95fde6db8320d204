"""The base install (no extras), for real: one fresh virtualenv per test session with ``pip install
<this checkout>`` (numpy, OpenCV, onnxruntime, tqdm, PyYAML; no torch, scipy or matplotlib). Every
command either runs or names its extra in one line (exit code 2), ``facescope detect`` works with
the embedded default model on an empty weights cache, without network, and a video is tracked.
Slow (a virtualenv and a pip install); tests/cli/test_base_commands.py checks the same with an import blocker in the default suite."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding only the base install (built once per session)."""
    env_dir = tmp_path_factory.mktemp("base_install") / "venv"
    venv.create(env_dir, with_pip=True)  # isolated: no system site-packages, so nothing leaks in
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & {"torch", "torchvision", "scipy", "matplotlib", "pillow", "onnx", "fastapi", "uvicorn", "ray"}, installed
    return env_dir


def _facescope(env_dir: Path, *args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1",
           "FACESCOPE_HOME": str(home or cwd / "facescope_home"),
           "no_proxy": "*", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}  # fmt: skip  # no network
    return subprocess.run([str(env_dir / "bin" / "facescope"), *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_detect_with_the_embedded_model_on_an_empty_cache_offline(base_env, tmp_path, shared_data) -> None:
    home = tmp_path / "empty_home"
    faces_json = tmp_path / "faces.json"
    detect = _facescope(base_env, "detect", str(shared_data / "images/crowd/t1.jpg"), "--json", str(faces_json), cwd=tmp_path, home=home)
    assert detect.returncode == 0, detect.stderr[-2000:]
    assert "retinaface_mnet025 (retinaface_mnet025.onnx) [onnxruntime]" in detect.stdout
    assert len(json.loads(faces_json.read_text())["faces"]) == 6 and not home.exists()  # nothing downloaded or cached


def test_detect_with_onnx_weights_and_a_pth_names_the_torch_extra(base_env, tmp_path, shared_data) -> None:
    faces_json = tmp_path / "faces.json"
    detect = _facescope(base_env, "detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "scrfd_500m_kps",
                        "--weights", str(shared_data / "weights/scrfd/scrfd_500m_kps.onnx"), "--json", str(faces_json), cwd=tmp_path)  # fmt: skip
    assert detect.returncode == 0, detect.stderr[-2000:]
    assert len(json.loads(faces_json.read_text())["faces"]) == 6  # the 6 faces of t1.jpg, as the torch path finds
    assert "weights licence: insightface model zoo: non-commercial research purposes only" in detect.stdout
    pth = _facescope(base_env, "detect", str(shared_data / "images/crowd/t1.jpg"), "--model", "retinaface_mnet025",
                     "--weights", str(shared_data / "weights/retinaface/mobilenet0.25_Final.pth"), cwd=tmp_path)  # fmt: skip
    assert pth.returncode == 2 and 'pip install "facescope[torch]"' in pth.stderr
    assert "Traceback" not in pth.stderr



def test_a_video_is_decoded_and_tracked_without_scipy(base_env, tmp_path, shared_data) -> None:
    """The base install's OpenCV decodes the video; the assignment is lap's, not scipy's."""
    make_clip = (
        "import cv2, sys\nimage = cv2.imread(sys.argv[1])[200:680, :640]\n"
        "w = cv2.VideoWriter('clip.mp4', cv2.VideoWriter_fourcc(*'mp4v'), 25, (640, 480))\n"
        "[w.write(image) for _ in range(5)]\nw.release()\n"
    )
    subprocess.run([str(base_env / "bin" / "python"), "-c", make_clip, str(shared_data / "images/crowd/t1.jpg")], cwd=tmp_path, check=True)
    video = _facescope(base_env, "detect", "clip.mp4", "--model", "scrfd_500m_kps", "--weights", str(shared_data / "weights/scrfd/scrfd_500m_kps.onnx"),
                       "--json", "tracks.jsonl", "--out", "tracked.mp4", cwd=tmp_path)  # fmt: skip
    assert video.returncode == 0, video.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert len(records) == 5 and records[-1]["faces"] and all(face["track_id"] >= 1 for face in records[-1]["faces"])


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["models"], None),
        (["--help"], None),
        (["detect", "--help"], None),
        (["info", "scrfd_500m_kps"], "torch"),
        (["export", "scrfd_500m_kps", "--out", "x.onnx"], "torch"),
        (["train", str(REPO / "configs/scrfd_500m_kps.yaml"), "--data-root", "nowhere"], "torch"),
        (["eval", "widerface", "--predictions", "p", "--gt", "g"], "eval"),
        (["eval", "fddb", "--ellipses", "e", "--images", "i"], "eval"),
        (["eval", "landmarks", "--labels", "l", "--images", "i"], "torch"),
        (["eval", "afw", "--annotations", "a.mat", "--detections", "d.txt"], "eval"),
        (["eval", "pascal", "--annotations", "a.mat", "--detections", "d.txt"], "eval"),
        (["serve", "--port", "8080"], "serve"),
    ],
)
def test_every_command_runs_or_names_its_extra(base_env, tmp_path, args, extra) -> None:
    run = _facescope(base_env, *args, cwd=tmp_path)
    if extra is None:
        assert run.returncode == 0 and run.stdout, run.stderr[-2000:]
        return
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.strip().splitlines() == [run.stderr.strip()] and f'pip install "facescope[{extra}]"' in run.stderr
    assert not [p for p in tmp_path.iterdir() if p.name != "facescope_home"]  # nothing written before the refusal
