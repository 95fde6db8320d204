"""Training throughput on this machine: images/s, and how the time splits between data loading and the
model step (forward, loss, backward, SGD), for a few models, batch sizes and loader worker counts.

    python benchmarks/train_throughput.py [--models scrfd_500m_kps scrfd_2.5g_kps] [--steps 12] [--threads 2]

Data: the 38 real WIDER FACE val images of ../shared/data (FACESCOPE_SHARED_DATA), with the full SCRFD
augmentation at 640x640. Timings are medians over the measured steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def measure(model: str, batch_size: int, workers: int, steps: int) -> dict[str, float]:
    from facescope.engine.config import DataConfig, OptimConfig, RuntimeConfig, TrainConfig
    from facescope.distributed import DistInfo
    from facescope.engine.trainer import build_trainer, train_step

    data = DataConfig(
        train_annotations=str(SHARED / "widerface/wider_face_val_bbx_gt.txt"),
        train_images=str(SHARED / "widerface/WIDER_val/images"),
        format="wider", skip_missing_images=True, batch_size=batch_size, workers=workers,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model, data=data, optim=OptimConfig(warmup_iters=1), runtime=RuntimeConfig(out_dir=out, device="cpu"))
        trainer = build_trainer(config, DistInfo(), torch.device("cpu"), progress=False)
        trainer.model.train()
        data_times, step_times = [], []
        epoch = 0
        while len(step_times) < steps + 2:
            trainer.strategy.set_epoch(epoch)
            trainer.dataset.set_epoch(epoch)
            tick = time.perf_counter()
            for batches in trainer.strategy.batches():
                loaded = time.perf_counter()
                train_step(trainer, batches)
                done = time.perf_counter()
                data_times.append(loaded - tick)
                step_times.append(done - loaded)
                tick = time.perf_counter()
                if len(step_times) >= steps + 2:
                    break
            epoch += 1
        trainer.logger.close()
    data_s = statistics.median(data_times[2:])
    step_s = statistics.median(step_times[2:])
    return {
        "model": model, "batch": batch_size, "workers": workers, "images_per_s": batch_size / (data_s + step_s),
        "data_s_per_batch": data_s, "model_s_per_batch": step_s, "data_fraction": data_s / (data_s + step_s),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["scrfd_500m_kps", "scrfd_2.5g_kps"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not (SHARED / "widerface/WIDER_val/images").is_dir():
        print(f"skipped: shared data not found at {SHARED} (set FACESCOPE_SHARED_DATA)")
        return 0
    torch.set_num_threads(args.threads)
    rows = [measure(m, args.batch, w, args.steps) for m in args.models for w in args.workers]
    print(f"torch threads {args.threads}, {os.cpu_count()} CPUs, batch {args.batch}, 640x640, median of {args.steps} steps")
    print(f"{'model':<16} {'workers':>7} {'img/s':>7} {'data s/batch':>13} {'model s/batch':>14} {'waiting for data':>17}")
    for r in rows:
        print(f"{r['model']:<16} {r['workers']:>7} {r['images_per_s']:>7.2f} {r['data_s_per_batch']:>13.3f} "
              f"{r['model_s_per_batch']:>14.3f} {r['data_fraction']:>16.1%}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
