"""``facescope detect`` on videos: the round trip, failures that keep what was done, Ctrl-C, no torch.

Clips are made here from the shared photo ``images/crowd/t1.jpg`` (never stored in the repository)."""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facescope.cli import main
from oracles.video_clips import pan, render, write_video

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def photo(shared_data) -> np.ndarray:
    return cv2.imread(str(shared_data / "images/crowd/t1.jpg"))


def make_clip(path: Path, photo: np.ndarray, frames: int, fourcc: str = "mp4v") -> Path:
    faces = np.zeros((0, 4))  # the frames only: no truth needed here
    write_video(str(path), render(pan("pan", frames, 0.8, photo.shape[:2]), photo, faces), fps=25.0, fourcc=fourcc)
    return path


def model_args(scrfd_onnx) -> list[str]:
    return ["--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--threads", "1"]


def video_info(path: Path) -> tuple[int, int, int, float]:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    info = (count, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), capture.get(cv2.CAP_PROP_FPS))
    capture.release()
    return info


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("every,suffix", [(1, ".mp4"), (3, ".avi")])
def test_round_trip_keeps_frame_count_size_and_rate(tmp_path, photo, scrfd_onnx, every, suffix):
    clip = make_clip(tmp_path / "clip.mp4", photo, 30)
    out, tracks = tmp_path / f"annotated{suffix}", tmp_path / "tracks.jsonl"
    code = main(["detect", str(clip), "--out", str(out), "--json", str(tracks), "--every", str(every), "--quiet", *model_args(scrfd_onnx)])
    assert code == 0
    assert video_info(out) == (30, 640, 480, 25.0)  # every source frame, annotated or carried over
    records = read_lines(tracks)
    assert [r["frame"] for r in records] == list(range(0, 30, every))  # one line per processed frame
    assert records[1]["time"] == pytest.approx(every / 25.0)
    first = records[0]["faces"]
    assert len(first) >= 3 and {"track_id", "box", "score", "landmarks"} <= set(first[0])
    assert len({f["track_id"] for f in first}) == len(first)


def test_time_range_and_target_rate(tmp_path, photo, scrfd_onnx):
    clip = make_clip(tmp_path / "clip.mp4", photo, 30)
    tracks = tmp_path / "tracks.jsonl"
    assert main(["detect", str(clip), "--json", str(tracks), "--start", "0.4", "--end", "1.0", "--target-fps", "5", "--quiet", *model_args(scrfd_onnx)]) == 0
    assert [r["frame"] for r in read_lines(tracks)] == [10, 15, 20]  # 0.4, 0.6, 0.8 s of [0.4, 1.0) at 25 fps


def test_sigint_midway_leaves_parsable_lines_and_a_finalised_video(tmp_path, photo, scrfd_onnx):
    clip = make_clip(tmp_path / "clip.mp4", photo, 400)
    out, tracks = tmp_path / "annotated.mp4", tmp_path / "tracks.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "facescope", "detect", str(clip), "--out", str(out), "--json", str(tracks), "--quiet", *model_args(scrfd_onnx)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if tracks.exists() and tracks.read_text().count("\n") >= 10:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "facescope: interrupted"
    records = read_lines(tracks)  # every line parses
    assert 10 <= len(records) < 400 and [r["frame"] for r in records] == list(range(len(records)))
    frames, width, height, fps = video_info(out)  # playable, finalised
    assert abs(frames - len(records)) <= 1 and (width, height, fps) == (640, 480, 25.0)


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Serves the file at ``payload`` but cuts the connection after half of it (a dropped stream)."""

    payload = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[: len(self.payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_stream_dropping_midway_keeps_what_was_processed(tmp_path, photo, scrfd_onnx):
    clip = make_clip(tmp_path / "clip.avi", photo, 40, fourcc="MJPG")
    _DroppingHandler.payload = clip.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DroppingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        out, tracks = tmp_path / "annotated.mp4", tmp_path / "tracks.jsonl"
        run = subprocess.run(
            [sys.executable, "-m", "facescope", "detect", url, "--out", str(out), "--json", str(tracks), "--quiet", *model_args(scrfd_onnx)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "ended at frame" in lines[0] and "Traceback" not in run.stderr
    records = read_lines(tracks)
    assert 0 < len(records) < 40
    assert video_info(out)[0] == len(records)


@pytest.mark.parametrize(
    "source,message",
    [("97", "cannot open camera 97"), ("garbage.mp4", "cannot open video file garbage.mp4"),
     ("missing.mkv", "no such video file: missing.mkv")],
)  # fmt: skip
def test_unopenable_sources_are_one_line_errors_before_any_work(tmp_path, scrfd_onnx, source, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    run = subprocess.run(
        [sys.executable, "-m", "facescope", "detect", source, "--json", "t.jsonl", "--out", "o.mp4", *model_args(scrfd_onnx)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"facescope: error: {message}: OpenCV (FFmpeg) could not open or decode it"
                                               if "cannot" in message else f"facescope: error: {message}"]
    assert not (tmp_path / "t.jsonl").exists() and not (tmp_path / "o.mp4").exists()


def test_bad_video_outputs_are_refused(tmp_path, photo, scrfd_onnx, capsys):
    clip = make_clip(tmp_path / "clip.mp4", photo, 2)
    assert main(["detect", str(clip), "--out", str(tmp_path / "x.jpg"), *model_args(scrfd_onnx)]) == 2
    assert "must end in .mp4" in capsys.readouterr().err
    assert main(["detect", str(clip), "--json", str(tmp_path / "no/t.jsonl"), *model_args(scrfd_onnx)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_video_with_onnx_weights_never_imports_torch(tmp_path, photo, scrfd_onnx):
    clip = make_clip(tmp_path / "clip.mp4", photo, 5)
    probe = (
        "import sys\nfrom facescope.cli import main\ncode = main(sys.argv[1:])\n"
        "print('TORCH', any(m.split('.')[0] == 'torch' for m in sys.modules))\nsys.exit(code)\n"
    )
    run = subprocess.run([sys.executable, "-c", probe, "detect", str(clip), "--json", str(tmp_path / "t.jsonl"), *model_args(scrfd_onnx)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "TORCH False" in run.stdout and len(read_lines(tmp_path / "t.jsonl")) == 5
