"""Memory over a long stream: RSS while 1,000 frames of varying size go through ``Detector`` and
through ``facescope detect DIR``.

    python benchmarks/stream.py --frames 1000 --json benchmarks/results/stream.json

Runs (each with its own Detector):

* ``Detector.stream`` (onnxruntime backend, default letterbox preset): frames of random sizes
  from 160x120 to 1920x1080 cut from a real photo;
* ``Detector.stream`` with ``input_size="original"``: the network input size changes with every
  frame size, so per-size caches (prior grids, framework kernels) are exercised;
* ``facescope detect DIR`` as a subprocess over a temporary folder of JPEGs of varying size, its RSS
  sampled from ``/proc`` every 50 ms.

RSS is read after ``--warmup`` frames and at the end; the growth between the two is the number
the target (<= 5%) is about.
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

from benchmarks.memory import rss_mb  # noqa: E402


def frames(source: np.ndarray, count: int, seed: int = 0, max_side: int = 1920):
    """``count`` BGR frames of random sizes (crops of ``source`` resized), generated lazily."""
    rng = np.random.default_rng(seed)
    height, width = source.shape[:2]
    for _ in range(count):
        out_w = int(rng.integers(160, max_side + 1))
        out_h = int(np.clip(out_w * rng.uniform(0.5, 1.0), 120, 1080))
        x0, y0 = int(rng.integers(0, width // 4)), int(rng.integers(0, height // 4))
        crop = source[y0 : y0 + height * 3 // 4, x0 : x0 + width * 3 // 4]
        yield cv2.resize(crop, (out_w, out_h))


def stream_detector(
    label: str, weights: Path, backend: str, source: np.ndarray, count: int, warmup: int, max_side: int = 1920, **options
) -> dict:
    from facescope import Detector

    detector = Detector("scrfd_500m_kps", weights, backend=backend, threads=1, progress=False, tune_process=True, **options)
    samples, faces, start = [], 0, time.perf_counter()
    for index, detections in enumerate(detector.stream(frames(source, count, max_side=max_side), color_order="bgr"), start=1):
        faces += len(detections)
        if index == warmup or index % 100 == 0 or index == count:
            samples.append((index, rss_mb()))
    after_warmup = dict(samples)[warmup]
    end = samples[-1][1]
    return {
        "label": label,
        "frames": count,
        "warmup_frames": warmup,
        "faces": faces,
        "seconds": time.perf_counter() - start,
        "rss_after_warmup_mb": after_warmup,
        "rss_end_mb": end,
        "rss_max_mb": max(v for _, v in samples),
        "growth_percent": 100 * (end - after_warmup) / after_warmup,
        "samples": samples,
    }


def stream_cli(weights: Path, source: np.ndarray, count: int, warmup: int) -> dict:
    """``facescope detect DIR`` over ``count`` generated JPEGs; RSS sampled from ``/proc`` every 50 ms and
    paired with the image count of the CLI's progress bar (read from its stderr)."""
    with tempfile.TemporaryDirectory(prefix="facescope_stream_") as folder:
        for index, frame in enumerate(frames(source, count, seed=1, max_side=1280)):
            cv2.imwrite(os.path.join(folder, f"{index:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
        command = [sys.executable, "-m", "facescope", "detect", folder, "--model", "scrfd_500m_kps", "--weights", str(weights),
                   "--backend", "onnxruntime", "--threads", "1"]
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        progress = _ProgressReader(process.stderr)
        samples = []  # (seconds, images done, RSS MiB)
        while process.poll() is None:
            try:
                rss = rss_mb(process.pid)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                break
            if rss > 0:  # 0 once the process is a zombie
                samples.append((time.perf_counter() - start, progress.done, rss))
            time.sleep(0.05)
        process.wait()
        progress.join()
    # while images are being processed: after warm-up, before the last image (exit and teardown
    # change the RSS of a finishing process)
    measured = [s for s in samples if warmup <= s[1] < count]
    if process.returncode not in (0, 1) or len(measured) < 10:
        return {"label": "facescope detect DIR", "error": f"exit {process.returncode}: {progress.tail()}"}
    # medians of the first and last five samples (50 ms apart) smooth transient allocations
    after_warmup = float(np.median([s[2] for s in measured[:5]]))
    end = float(np.median([s[2] for s in measured[-5:]]))
    return {
        "label": "facescope detect DIR (onnxruntime, 1 thread, default preset)",
        "frames": count,
        "warmup_frames": warmup,
        "seconds": samples[-1][0],
        "rss_after_warmup_mb": after_warmup,
        "rss_end_mb": end,
        "last_sample_images": measured[-1][1],
        "rss_definition": "median of the first / last 5 samples (50 ms apart) between warm-up and the last image",
        "rss_max_mb": max(s[2] for s in samples),
        "growth_percent": 100 * (end - after_warmup) / after_warmup,
        "samples": samples[:: max(1, len(samples) // 100)],
    }


class _ProgressReader:
    """Follows tqdm's ``n/total`` counter in a child's stderr (a background thread)."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - a text pipe
        import re
        import threading

        self.done = 0
        self._text = ""
        self._pattern = re.compile(r"(\d+)/(\d+) \[")
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # noqa: ANN001
        while chunk := stream.read(256):
            self._text = (self._text + chunk)[-4096:]
            found = self._pattern.findall(self._text)
            if found:
                self.done = int(found[-1][0])

    def join(self) -> None:
        self._thread.join(timeout=5)

    def tail(self) -> str:
        return self._text.strip()[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100, help="frames before the 'after warm-up' RSS reading")
    parser.add_argument("--weights", type=Path, help="scrfd_500m_kps .onnx (default: the official file in shared data)")
    parser.add_argument("--image", type=Path, help="source photo (default: shared images/crowd/selfie.jpg)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `facescope detect DIR` run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    shared = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))
    weights = args.weights or shared / "weights" / "scrfd" / "scrfd_500m_kps.onnx"
    source = cv2.imread(str(args.image or shared / "images" / "crowd" / "selfie.jpg"))
    warmup = min(args.warmup, max(args.frames // 10, 1))
    runs = [
        stream_detector("Detector.stream, onnxruntime, letterbox 640", weights, "onnxruntime", source, args.frames, warmup),
        # at the frame's own size the network cost grows with the area: frames up to 800 px wide
        stream_detector("Detector.stream, onnxruntime, input_size='original' (frames <= 800 px)", weights, "onnxruntime",
                        source, args.frames, warmup, max_side=800, input_size="original"),
    ]
    if not args.no_cli:
        runs.append(stream_cli(weights, source, args.frames, warmup))
    for run in runs:
        if "error" in run:
            print(f"{run['label']}: {run['error']}")
        else:
            print(f"{run['label']}: {run['frames']} frames in {run['seconds']:.0f} s, RSS {run['rss_after_warmup_mb']:.1f} MiB after "
                  f"warm-up -> {run['rss_end_mb']:.1f} MiB at the end ({run['growth_percent']:+.2f}%), max {run['rss_max_mb']:.1f} MiB")
    result = {"runs": [r for r in runs if "error" not in r], "errors": [r for r in runs if "error" in r]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
