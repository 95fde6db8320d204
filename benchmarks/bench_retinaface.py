"""RetinaFace-MobileNet-0.25 inference time: facescope vs the official pipeline, same run, same images.

Both use the official weights and the ``test_widerface.py`` settings (original size, score 0.02,
NMS 0.4). The reference is ``tests/oracles/pytorch_retinaface.py`` (the official network,
Python ``PriorBox`` loops, numpy NMS). Reported: median wall time per image and the ratio.

    python benchmarks/bench_retinaface.py [--images N] [--threads T] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test oracles (`tests/oracles/`)

from facescope.inference.detector import Detector  # noqa: E402
from oracles.pytorch_retinaface import PytorchRetinaFaceReference  # noqa: E402

SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _median_seconds(run, images, repeats: int) -> float:  # noqa: ANN001 - a callable on a BGR image
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            run(image)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="WIDER val images to use")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = SHARED / "weights/retinaface/mobilenet0.25_Final.pth"
    paths = sorted((SHARED / "widerface/WIDER_val/images").rglob("*.jpg"))[: args.images]
    if not weights.is_file() or not paths:
        raise SystemExit(f"shared data not found under {SHARED} (set FACESCOPE_SHARED_DATA)")
    images = [cv2.imread(str(p)) for p in paths]
    detector = Detector("retinaface_mnet025", weights, preset="official", threads=args.threads, tune_process=True)
    oracle = PytorchRetinaFaceReference("mobilenet0.25", weights)
    with torch.no_grad():
        ours = _median_seconds(lambda im: detector.detect(im, color_order="bgr"), images, args.repeats)
        reference = _median_seconds(oracle.detect, images, args.repeats)
    print(f"{len(images)} WIDER val images, {args.threads} thread(s), median per image:")
    print(f"  official pipeline (re-implementation): {reference * 1000:8.1f} ms")
    print(f"  facescope preset 'official'          : {ours * 1000:8.1f} ms   ({reference / ours:.2f}x)")


if __name__ == "__main__":
    main()
