"""One benchmark measurement in a fresh process (thread settings and RSS start clean).

    python benchmarks/worker.py probe     --spec JSON
    python benchmarks/worker.py latency   --spec JSON --threads 1 --size 640x480 --image PATH --runs 20 --warmup 3
    python benchmarks/worker.py paired    --spec JSON --reference-spec JSON --threads 1 --size 640x480 --image PATH
    python benchmarks/worker.py accuracy  --spec JSON --threads 2 --images DIR --predictions DIR

Prints one JSON object on the last line of stdout. The orchestrator (``run.py``) sets
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` in this process's environment;
the pipeline sets torch / onnxruntime / OpenCV threads itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: `benchmarks` and `facescope`

from benchmarks.memory import peak_rss_mb, rss_mb  # noqa: E402
from benchmarks.pipelines import PipelineSpec, build, requirements  # noqa: E402


def probe(spec: PipelineSpec) -> dict:
    """Which required modules are missing (``a|b`` = any one of them; ``mod:attr`` = an attribute)."""
    missing = []
    for requirement in requirements(spec.kind):
        if not any(_available(option) for option in requirement.split("|")):
            missing.append(requirement)
    if not Path(spec.weights).exists():
        missing.append(f"file {spec.weights}")
    return {"available": not missing, "missing": missing, "python": sys.executable}


def _available(requirement: str) -> bool:
    module, _, attribute = requirement.partition(":")
    if importlib.util.find_spec(module) is None:
        return False
    if attribute:
        return hasattr(importlib.import_module(module), attribute)
    return True


def latency(spec: PipelineSpec, threads: int, size: tuple[int, int], image: Path, runs: int, warmup: int) -> dict:
    import cv2

    frame = cv2.resize(cv2.imread(str(image)), size, interpolation=cv2.INTER_AREA)
    rss_start = rss_mb()
    start = time.perf_counter()
    detect = build(spec, threads)
    load_s = time.perf_counter() - start
    for _ in range(warmup):
        detect(frame)
    times = []
    faces = 0
    for _ in range(runs):
        start = time.perf_counter()
        faces = len(detect(frame))
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
        "mean_ms": float(ms.mean()),
        "times_ms": [round(float(t), 4) for t in ms],
        "runs": runs,
        "warmup": warmup,
        "faces": faces,
        "load_s": load_s,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
    }


def paired(spec: PipelineSpec, other: PipelineSpec, threads: int, size: tuple[int, int], image: Path, runs: int, warmup: int) -> dict:
    """``spec`` and ``other`` (the reference) in one process, frames alternating between them, so a
    load change on a shared machine hits both alike: the ratio of medians is load-robust."""
    import cv2

    frame = cv2.resize(cv2.imread(str(image)), size, interpolation=cv2.INTER_AREA)
    pipelines = [build(spec, threads), build(other, threads)]
    times: list[list[float]] = [[], []]
    for index in range(warmup + runs):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            start = time.perf_counter()
            pipelines[which](frame)
            if index >= warmup:
                times[which].append(time.perf_counter() - start)
    medians = [float(np.median(t)) * 1000 for t in times]
    return {"median_ms": medians[0], "reference_median_ms": medians[1], "ratio": medians[0] / medians[1], "runs": runs}


def accuracy(spec: PipelineSpec, threads: int, images: Path, predictions: Path) -> dict:
    """Detect at the AP operating point on every image below ``images`` (WIDER layout) and write
    official-format prediction files ``predictions/<event>/<name>.txt``."""
    import cv2

    detect = build(spec, threads, accuracy=True)
    paths = sorted(images.rglob("*.jpg"))
    start = time.perf_counter()
    total = 0
    for path in paths:
        dets = detect(cv2.imread(str(path)))
        total += len(dets)
        relative = path.relative_to(images).with_suffix(".txt")
        target = predictions / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [path.stem, str(len(dets))]
        lines += [f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f} {s:.5f}" for x1, y1, x2, y2, s in dets[:, :5]]
        target.write_text("\n".join(lines) + "\n")
    return {"images": len(paths), "detections": total, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=("probe", "latency", "paired", "accuracy"))
    parser.add_argument("--spec", required=True, help="PipelineSpec as JSON")
    parser.add_argument("--reference-spec", help="PipelineSpec of the reference (task paired)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    parser.add_argument("--image", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--predictions", type=Path)
    args = parser.parse_args()
    spec = PipelineSpec(**json.loads(args.spec))
    if args.task == "probe":
        result = probe(spec)
    elif args.task == "latency":
        width, height = (int(v) for v in args.size.split("x"))
        result = latency(spec, args.threads, (width, height), args.image, args.runs, args.warmup)
    elif args.task == "paired":
        width, height = (int(v) for v in args.size.split("x"))
        other = PipelineSpec(**json.loads(args.reference_spec))
        result = paired(spec, other, args.threads, (width, height), args.image, args.runs, args.warmup)
    else:
        result = accuracy(spec, args.threads, args.images, args.predictions)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
