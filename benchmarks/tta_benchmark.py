"""Test-time augmentation: WIDER FACE mini-benchmark AP and latency per protocol, and a crowd photo.

For each model (the official weights, each on its usual backend) the single pass and every asked
protocol run over the WIDER FACE val images present under ``--images`` (the 38 of the shared data:
a mini-benchmark, never comparable with full-val numbers) with the model's WIDER protocol preset
(``widerface``: score >= 0.02 for SCRFD, > 0.02 for RetinaFace), scored by the project's evaluator.
Latency is the mean wall time per image of the same run (image decoding and scoring included, the
same for every row), so the ratio to the single pass of the same model is the comparable number.

Every row first runs the first ``--probe`` images untimed (a warm-up); a protocol whose estimated run
(its seconds on those images times the image count) exceeds ``--budget-s`` is skipped and recorded as
such, so the table says what was not measured.

The crowd part counts the faces found in ``images/crowd/worlds-largest-selfie.jpg`` at the default
preset (score >= 0.5) single-pass and with a pyramid protocol, and writes the annotated pyramid
result as a small JPEG.

Usage::

    FACESCOPE_SHARED_DATA=/work/shared/data python benchmarks/tta_benchmark.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facescope.eval import evaluate_detector_on_widerface
from facescope.eval.widerface_runner import find_wider_images, load_ground_truth
from facescope.fileio import atomic_write_text
from facescope.inference.detector import Detector
from facescope.inference.image_io import read_image

SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", "/work/shared/data"))
MODELS = {
    # name: (weights file under the shared data, backend)
    "scrfd_2.5g_kps": ("weights/scrfd/scrfd_2.5g_kps.onnx", "onnxruntime"),
    "retinaface_mnet025": ("weights/retinaface/mobilenet0.25_Final.pth", "torch"),
}
PROTOCOLS = ("none", "flip", "multiscale", "retinaface", "shf", "s3fd", "dsfd", "pyramidbox")


class _Timed:
    """Wraps a Detector: ``detect`` timed (seconds per call recorded)."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.seconds: list[float] = []

    def detect(self, image: Any, *, color_order: str | None = None) -> Any:
        start = time.perf_counter()
        found = self.detector.detect(image, color_order=color_order)
        self.seconds.append(time.perf_counter() - start)
        return found

    def describe(self) -> str:
        return self.detector.describe()


def _detector(model: str, protocol: str, preset: str, threads: int | None, device: str = "cpu") -> Detector:
    weights, backend = MODELS[model]
    # --device applies to the torch backend; onnxruntime runs on the CPU provider
    where = device if backend == "torch" else "cpu"
    return Detector(model, SHARED / weights, preset=preset, backend=backend, tta=protocol, threads=threads, device=where)


def _probe_seconds(detector: Detector, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        detector.detect(read_image(path), color_order="bgr")
    return (time.perf_counter() - start) / max(len(paths), 1)


def widerface_rows(args: argparse.Namespace, report: dict[str, Any]) -> list[dict[str, Any]]:
    gt = load_ground_truth(args.gt)
    images, _ = find_wider_images(args.images, gt)
    probe_paths = [images[k] for k in sorted(images)[: args.probe]]
    rows: list[dict[str, Any]] = report.setdefault("widerface_mini", [])
    for model in args.models:
        for protocol in args.protocols:
            detector = _detector(model, protocol, "widerface", args.threads, args.device)
            row: dict[str, Any] = {
                "model": model, "backend": detector.backend.name, "device": detector.device, "protocol": protocol
            }
            # the probe also warms the detector up (first-call allocations, lazy initialisation), for every row
            estimate = _probe_seconds(detector, probe_paths) * len(images)
            row["estimated_s"] = round(estimate, 1)
            if protocol != "none":
                if estimate > args.budget_s:
                    row.update(skipped=f"estimated {estimate:.0f} s for {len(images)} images > budget {args.budget_s:.0f} s")
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    _write(args, report)
                    continue
            timed = _Timed(detector)
            result = evaluate_detector_on_widerface(
                timed, args.images, gt, None, progress=False, challenge=False, require_protocol_preset=False
            )
            row.update(
                images=len(timed.seconds),
                ap={k: round(float(v), 4) for k, v in result.ap.items()},
                seconds_per_image=round(float(np.mean(timed.seconds)), 4),
                notes=sorted(set(detector.last_tta_notes)),
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
            _write(args, report)  # after every row: an interrupted run keeps what it measured
    return rows


def _write(args: argparse.Namespace, report: dict[str, Any]) -> None:
    atomic_write_text(Path(args.out) / args.report_name, json.dumps(report, indent=1) + "\n")


def crowd(args: argparse.Namespace) -> dict[str, Any]:
    from facescope.inference.visualize import draw_detections

    path = SHARED / "images/crowd/worlds-largest-selfie.jpg"
    image = read_image(path)
    counts: dict[str, Any] = {"image": path.name, "size": [int(image.shape[1]), int(image.shape[0])], "preset": "default"}
    for protocol in ("none", args.crowd_protocol):
        detector = _detector(args.crowd_model, protocol, "default", args.threads)
        start = time.perf_counter()
        found = detector.detect(image, color_order="bgr")
        counts[protocol] = {"faces": len(found), "seconds": round(time.perf_counter() - start, 3)}
        if protocol != "none":
            annotated = draw_detections(image, found, show_scores=False)
            out = Path(args.out) / f"tta_crowd_{args.crowd_model}_{protocol}.jpg"
            cv2.imwrite(str(out), annotated, [cv2.IMWRITE_JPEG_QUALITY, 80])
            counts["annotated"] = str(out)
    counts["model"] = args.crowd_model
    print(json.dumps(counts), flush=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(SHARED / "widerface/WIDER_val/images"))
    parser.add_argument("--gt", default=str(SHARED / "widerface/ground_truth"))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    parser.add_argument("--budget-s", type=float, default=180.0, help="skip a protocol estimated to take longer")
    parser.add_argument("--probe", type=int, default=2, help="images timed for the estimate")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--crowd-model", default="scrfd_2.5g_kps", choices=list(MODELS))
    parser.add_argument("--crowd-protocol", default="retinaface")
    parser.add_argument("--skip-widerface", action="store_true")
    parser.add_argument("--skip-crowd", action="store_true")
    parser.add_argument("--device", default="cpu", help="device of the torch backend (cuda, cpu)")
    parser.add_argument("--report-name", default="tta_benchmark.json")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "budget_s": args.budget_s,
    }
    if not args.skip_crowd:
        report["crowd"] = crowd(args)
    if not args.skip_widerface:
        widerface_rows(args, report)
    _write(args, report)


if __name__ == "__main__":
    main()
