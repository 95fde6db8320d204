"""Video tracking: accuracy on clips with exact tracks, throughput, and memory over long videos.

    FACESCOPE_SHARED_DATA=../shared/data python benchmarks/video_tracking.py --json benchmarks/results/video_tracking.json

Three parts, all with ``scrfd_500m_kps`` (the official ONNX file, onnxruntime, one thread):

* **accuracy**: clips made now from shared photos (``tests/oracles/video_clips.py``: pan, zoom,
  a face hidden for k frames), MOTA / IDF1 / identity switches by py-motmetrics;
* **throughput**: 640x480 frames (pre-rendered, decoding excluded); per frame the detector and the
  tracker are timed in the same loop, so their ratio is measured under the same machine load;
* **memory**: ``facescope detect CLIP --out --json`` as subprocesses on a 1,000-frame and a
  10,000-frame clip, interleaved (1k, 10k, 1k), peak RSS (``VmHWM``) of each process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test oracles (`tests/oracles/`)

from oracles.video_clips import ClipSpec, drift, pan, render, score, t1_clips, write_video  # noqa: E402

from facescope.inference.detector import Detector  # noqa: E402
from facescope.tracking import FaceTracker, TrackerConfig  # noqa: E402

PEAK_PROBE = (
    "import sys\nfrom facescope.cli import main\ncode = main(sys.argv[1:])\n"
    "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('PEAK_KB', peak)\nsys.exit(code)\n"
)


def shared() -> Path:
    return Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def weights() -> Path:
    return shared() / "weights/scrfd/scrfd_500m_kps.onnx"


def reference_faces(photo: np.ndarray) -> np.ndarray:
    detector = Detector("scrfd_500m_kps", weights(), threads=1, input_size="original")
    return detector.detect(photo, color_order="bgr").boxes


def accuracy() -> list[dict]:
    rows = []
    detector = Detector("scrfd_500m_kps", weights(), threads=1, score_thresh=0.1)
    for name in ("crowd/t1.jpg", "misc/demo.jpg"):
        photo = cv2.imread(str(shared() / "images" / name))
        faces = reference_faces(photo)
        specs = t1_clips(photo.shape[:2], hidden_frames=30) if name == "crowd/t1.jpg" else [pan("pan", 90, 1.0, photo.shape[:2])]
        if name == "crowd/t1.jpg":
            specs.append(drift("hidden_10", 50, 0.5, 1.0, photo.shape[:2], {0: (20, 29)}))
        for spec in specs:
            results = [(f.faces.detections.boxes, f.faces.track_ids) for f in detector.track(render(spec, photo, faces), fps=25.0)]
            rows.append({"photo": name, "clip": spec.name, "frames": len(spec), "faces": len(faces), **score(spec, faces, results)})
            print(rows[-1], flush=True)
    return rows


def throughput(frames: int) -> list[dict]:
    """Both input sizes frame by frame in one loop (interleaved, same load); per frame the detector
    and then its own tracker are timed."""
    photo = cv2.imread(str(shared() / "images/crowd/t1.jpg"))
    faces = reference_faces(photo)
    clip = list(render(pan("pan", frames, 0.8, photo.shape[:2]), photo, faces))
    sizes = {"letterbox 640x640 (default preset)": None, "640x480 (no padding)": (640, 480)}
    detectors = {name: Detector("scrfd_500m_kps", weights(), threads=1, score_thresh=0.1, input_size=size) for name, size in sizes.items()}
    trackers = {name: FaceTracker(TrackerConfig()) for name in sizes}
    detect_s, track_s = dict.fromkeys(sizes, 0.0), dict.fromkeys(sizes, 0.0)
    for detector in detectors.values():
        for image in clip[:10]:  # warm-up
            detector.detect(image, color_order="bgr")
    for image in clip:
        for name, detector in detectors.items():
            start = time.perf_counter()
            found = detector.detect(image, color_order="bgr")
            middle = time.perf_counter()
            trackers[name].update(found)
            detect_s[name] += middle - start
            track_s[name] += time.perf_counter() - middle
    rows = []
    for name in sizes:
        rows.append({
            "input": name, "frames": frames, "detect_ms": 1000 * detect_s[name] / frames, "track_ms": 1000 * track_s[name] / frames,
            "fps_detect_and_track": frames / (detect_s[name] + track_s[name]), "track_over_detect": track_s[name] / detect_s[name],
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def long_clip(path: Path, frames: int, photo: np.ndarray) -> None:
    """A pan that goes back and forth every 200 frames, ``frames`` long."""
    cycle = pan("pan", 100, 0.8, photo.shape[:2]).transforms
    transforms = tuple((cycle + cycle[::-1])[t % 200] for t in range(frames))
    write_video(str(path), render(ClipSpec("long", transforms), photo, np.zeros((0, 4))), fps=25.0)


def memory(short: int, long: int, input_size: str) -> list[dict]:
    photo = cv2.imread(str(shared() / "images/crowd/t1.jpg"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {n: Path(tmp) / f"clip_{n}.mp4" for n in (short, long)}
        for n, path in clips.items():
            long_clip(path, n, photo)
        for n in (short, long, short):  # interleaved: a drift of the machine shows as a 1k-vs-1k difference
            args = ["detect", str(clips[n]), "--out", str(Path(tmp) / "out.mp4"), "--json", str(Path(tmp) / "t.jsonl"),
                    "--model", "scrfd_500m_kps", "--weights", str(weights()), "--threads", "1", "--input-size", input_size, "--quiet"]
            start = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", PEAK_PROBE, *args], capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
            assert run.returncode == 0, run.stderr[-2000:]
            peak = int(run.stdout.split("PEAK_KB")[1].split()[0]) / 1024
            lines = (Path(tmp) / "t.jsonl").read_text().count("\n")
            rows.append({"frames": n, "json_lines": lines, "peak_rss_mib": peak, "seconds": time.perf_counter() - start})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--throughput-frames", type=int, default=300)
    parser.add_argument("--memory-frames", type=int, nargs=2, default=(1000, 10000), metavar=("SHORT", "LONG"))
    parser.add_argument("--memory-input-size", default="320", help="detector input for the memory runs (speed only)")
    parser.add_argument("--skip", nargs="*", default=(), choices=("accuracy", "throughput", "memory"))
    args = parser.parse_args()
    report = {"machine": {"cpus": os.cpu_count(), "note": "shared with other jobs while measured"}}
    if args.json and Path(args.json).is_file():  # a partial run (--skip) keeps the other parts' numbers
        report = {**json.loads(Path(args.json).read_text()), **report}
    if "accuracy" not in args.skip:
        report["accuracy"] = accuracy()
    if "throughput" not in args.skip:
        report["throughput"] = throughput(args.throughput_frames)
    if "memory" not in args.skip:
        report["memory"] = memory(*args.memory_frames, args.memory_input_size)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
