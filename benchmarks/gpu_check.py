"""One prepared check for a CUDA machine (run by ``benchmarks/gpu_check.sh``, about 5 minutes).

1. the CUDA-capable tests (``pytest -m cuda``: they skip on machines without a GPU);
2. mixed-precision training of ``scrfd_500m_kps`` for 200 iterations on the 38 real WIDER FACE val images
   (``benchmarks/configs/gpu_amp_scrfd_500m_kps.yaml``): images/s and whether the loss falls;
3. network latency at VGA (640x480) for batch 1 and 32, float32 and float16 autocast, for one model of every
   registered family and size class (random weights: speed does not depend on the values), timed with CUDA events.

Everything goes into one JSON file::

    python benchmarks/gpu_check.py --data DATA_ROOT --out gpu_check.json

``DATA_ROOT`` holds ``widerface/`` (``WIDER_val/images``, ``wider_face_val_bbx_gt.txt``) as in
``../shared/data``. Figures are measured on the machine that runs it; nothing here is a remembered number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRAIN_RECIPE = REPO / "benchmarks/configs/gpu_amp_scrfd_500m_kps.yaml"
LATENCY_MODELS = (
    "scrfd_500m_kps", "scrfd_2.5g_kps", "scrfd_10g_kps", "scrfd_34g",
    "retinaface_mnet025", "retinaface_r50", "retinaface_paper_r50",
)  # fmt: skip


def environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    }


def run_cuda_tests() -> dict[str, Any]:
    """``pytest -m cuda``; returns the counts pytest printed and its exit code."""
    tick = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)}
    return {"exit_code": proc.returncode, "summary": summary, "counts": counts, "seconds": time.perf_counter() - tick,
            "tail": (proc.stdout + proc.stderr)[-3000:] if proc.returncode else ""}  # fmt: skip


def run_training(data_root: Path, work: Path) -> dict[str, Any]:
    """200 AMP iterations through ``facescope train``; reads ``metrics.jsonl``."""
    out_dir = work / "train_amp"
    tick = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "facescope", "train", str(TRAIN_RECIPE), "--data-root", str(data_root),
         f"runtime.out_dir={out_dir}"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    wall = time.perf_counter() - tick
    result: dict[str, Any] = {"exit_code": proc.returncode, "wall_seconds": wall}
    metrics_path = out_dir / "metrics.jsonl"
    if proc.returncode or not metrics_path.exists():
        result["tail"] = (proc.stdout + proc.stderr)[-3000:]
        return result
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    # the first logged window includes CUDA/cuDNN start-up; throughput is the median of the rest
    rates = [r["images_per_s"] for r in steps[1:]] or [r["images_per_s"] for r in steps]
    result.update(
        iterations=steps[-1]["step"] if steps else 0,
        images_per_s_median=statistics.median(rates) if rates else None,
        loss_first_window=steps[0]["loss"] if steps else None,
        loss_last_window=steps[-1]["loss"] if steps else None,
        loss_falls=bool(steps) and steps[-1]["loss"] < steps[0]["loss"],
        loss_curve=[(r["step"], round(r["loss"], 4)) for r in steps],
        data_fraction_median=statistics.median(r["data_fraction"] for r in steps) if steps else None,
    )
    return result


def network_latency(name: str, batch: int, half: bool, iters: int = 20) -> dict[str, float]:
    """Milliseconds per forward pass (and per image) of a VGA batch on the GPU, CUDA-event timed."""
    import torch

    from facescope.models import create_model

    model = create_model(name, device="cuda")
    images = torch.randn(batch, 3, 480, 640, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
        for _ in range(5):
            model(images)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            start.record()
            model(images)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    del model
    torch.cuda.empty_cache()
    ms = statistics.median(times)
    return {"ms_per_batch": ms, "ms_per_image": ms / batch, "images_per_s": 1000.0 * batch / ms}


def run_latency(models: list[str]) -> dict[str, Any]:
    from facescope.models import list_models

    registered = set(list_models())
    rows: dict[str, Any] = {}
    for name in models:
        if name not in registered:
            rows[name] = {"error": "not registered"}
            continue
        row: dict[str, Any] = {}
        for batch in (1, 32):
            for half in (False, True):
                key = f"b{batch}_{'fp16' if half else 'fp32'}"
                try:
                    row[key] = network_latency(name, batch, half)
                except Exception as exc:  # noqa: BLE001 - one model failing must not lose the others' figures
                    row[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        rows[name] = row
        print(f"latency {name}: " + ", ".join(f"{k} {v.get('ms_per_batch', float('nan')):.2f} ms" for k, v in row.items()), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="data root holding widerface/")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--work", type=Path, default=Path("/tmp/facescope_gpu_check"))
    parser.add_argument("--models", nargs="*", default=None, help="models for the latency table")
    parser.add_argument("--skip", nargs="*", default=(), choices=("tests", "train", "latency"))
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; this check is for a CUDA machine", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"environment": environment()}
    if "tests" not in args.skip:
        report["cuda_tests"] = run_cuda_tests()
        print("cuda tests:", report["cuda_tests"]["summary"], flush=True)
    if "train" not in args.skip:
        report["training_amp_scrfd_500m_kps"] = run_training(args.data.resolve(), args.work)
        print("training:", {k: v for k, v in report["training_amp_scrfd_500m_kps"].items() if k != "loss_curve"}, flush=True)
    if "latency" not in args.skip:
        report["latency_vga"] = run_latency(list(args.models or LATENCY_MODELS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
