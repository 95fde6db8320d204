"""Peak memory of one forward pass per input pixel: the figure each catalogue entry declares as
``ModelEntry.bytes_per_pixel`` (the memory budget of :mod:`facescope.inference.validate` uses it).

    python benchmarks/memory_per_pixel.py --models dsfd_mnet025 shf_mnet025 --sizes 320 512
    python benchmarks/memory_per_pixel.py --models dsfd_official shf_vgg16 --sizes 256 384 --out benchmarks/results

What is measured: for every (model, size) a fresh process (:func:`measure_once`, one thread) builds the
model with random weights, wraps it in the Detector's torch backend (BatchNorm folded, channels-last:
what ``Detector(..., backend="torch")`` runs) and runs one ``[1, 3, S, S]`` forward plus activation as a
warm-up (oneDNN builds its kernels and reorders the weights once per input shape: hundreds of MiB for
ResNet-152, not a per-pixel cost). It then records the resident set size, resets the peak (``VmHWM``,
through ``/proc/self/clear_refs``), builds a new input and runs the same forward again (glibc with a
fixed 64 KiB mmap threshold, so that freed buffers leave the RSS): the growth
``peak - RSS`` is what one warm forward of that size needs (input, activations, scratch). The slope
between the two sizes, ``(growth(S2) - growth(S1)) / (S2^2 - S1^2)``, is the per-pixel figure (a
constant part cancels). The declared value adds a 25% margin (more threads and other allocators use
more scratch) and rounds up. Writes ``<out>/memory_per_pixel.json`` when ``--out`` is given. Linux only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MARGIN = 1.25
MIB = 2**20


def measure_once(model_name: str, side: int) -> dict[str, float]:
    """In this process: RSS after a warm-up forward of ``side x side`` and the peak RSS of a second one, MiB."""
    import numpy as np
    import torch

    from benchmarks.memory import peak_rss_mb, rss_mb
    from facescope.inference.backends import TorchBackend
    from facescope.models.registry import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    backend = TorchBackend(create_model(model_name), torch.device("cpu"))
    rng = np.random.default_rng(0)
    backend(rng.standard_normal((1, 3, side, side)).astype(np.float32))  # warm-up: kernels, weight reorders
    before = rss_mb()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    backend(rng.standard_normal((1, 3, side, side)).astype(np.float32))
    return {"rss_after_warmup_mib": before, "peak_mib": peak_rss_mb()}


def measure(model_name: str, side: int) -> dict[str, float]:
    """:func:`measure_once` in a fresh interpreter (peak RSS never goes down within a process)."""
    code = (
        "import json, sys; from benchmarks.memory_per_pixel import measure_once; "
        f"print(json.dumps(measure_once({model_name!r}, {side})))"
    )
    # A fixed mmap threshold: glibc then maps every large buffer on its own and unmaps it when freed, so the
    # RSS after the warm-up holds no freed activations (with the default dynamic threshold it keeps them).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MALLOC_MMAP_THRESHOLD_": "65536"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def slope(model_name: str, sides: tuple[int, int]) -> dict[str, object]:
    """Per-pixel growth between the two sides, and the declared figure (with the margin)."""
    rows = {side: measure(model_name, side) for side in sides}
    growth = {side: (row["peak_mib"] - row["rss_after_warmup_mib"]) * MIB for side, row in rows.items()}
    small, large = sides
    per_pixel = (growth[large] - growth[small]) / (large * large - small * small)
    return {
        "model": model_name,
        "sides": list(sides),
        "growth_bytes": {str(side): round(value) for side, value in growth.items()},
        "bytes_per_pixel": round(per_pixel, 1),
        "declared": math.ceil(per_pixel * MARGIN),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--sizes", nargs=2, type=int, default=(320, 512), metavar=("S1", "S2"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = []
    print("| model | growth S1 (MiB) | growth S2 (MiB) | bytes / pixel | declared (+25%) |\n|---|---|---|---|---|")
    for name in args.models:
        row = slope(name, tuple(args.sizes))
        results.append(row)
        g1, g2 = (row["growth_bytes"][str(s)] / MIB for s in args.sizes)  # type: ignore[index]
        print(f"| {name} ({args.sizes[0]}, {args.sizes[1]}) | {g1:.1f} | {g2:.1f} | {row['bytes_per_pixel']} | {row['declared']} |", flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "memory_per_pixel.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
