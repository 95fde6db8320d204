"""Cold start of one detection: ``facescope detect`` vs a minimal insightface-style script.

Every run is a fresh process (``/usr/bin/time`` reports its peak RSS, so the benchmark's own
memory is not counted); the commands alternate so that machine load hits them alike. One untimed
run of each command comes first; the timed ones read Python bytecode from a cache as an installed
package does (see :func:`bytecode_env`). Prints a
JSON summary (medians) and the ratios against the reference.

Usage:
    python benchmarks/cold_start.py --runs 10 [--torch-runs 3] [--image t1.jpg] [--weights scrfd_500m_kps.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def commands(image: Path, weights: Path, out: Path) -> dict[str, list[str]]:
    detect = [sys.executable, "-m", "facescope", "detect", str(image), "--model", "scrfd_500m_kps", "--weights", str(weights)]
    return {
        "reference (insightface-style script)": [sys.executable, str(Path(__file__).with_name("insightface_minimal.py")), str(image), str(weights), str(out)],
        "facescope detect (onnxruntime)": detect + ["--json", str(out)],
        "facescope detect --backend torch": detect + ["--json", str(out), "--backend", "torch"],
    }


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment of the timed processes: Python may write and read bytecode (in ``cache``), as an
    installed package has it (pip compiles at install). Without this, an environment that sets
    ``PYTHONDONTWRITEBYTECODE`` makes every run compile facescope's ~45 modules from source (about
    0.1 s) while the one-file reference compiles almost nothing."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def run_once(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh process."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        start = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *command], check=True, stdout=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - start
        peak_kib = int(report.read().strip().splitlines()[-1])
    return wall, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--torch-runs", type=int, help="runs of the torch path (default --runs; it is the slow one)")
    parser.add_argument("--image", type=Path, default=SHARED / "images/crowd/t1.jpg")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights/scrfd/scrfd_500m_kps.onnx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(args.image, args.weights, Path(tmp) / "out.json")
        if args.torch_runs == 0:  # e.g. a base install, which has no torch to run
            cmds = {name: command for name, command in cmds.items() if "torch" not in name}
        env = bytecode_env(Path(tmp) / "pycache")
        for command in cmds.values():  # untimed: bytecode written, facescope's optimised-graph cache filled
            run_once(command, env)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        torch_runs = args.runs if args.torch_runs is None else args.torch_runs
        for round_index in range(args.runs):
            for name, command in cmds.items():  # alternate: one run of each per round
                if "torch" in name and round_index >= torch_runs:
                    continue
                samples[name].append(run_once(command, env))
                print(json.dumps({"round": round_index, "command": name, "wall_s": round(samples[name][-1][0], 3),
                                  "peak_rss_mib": round(samples[name][-1][1], 1)}), file=sys.stderr, flush=True)
    summary = {
        name: {
            "wall_s_median": round(statistics.median(w for w, _ in runs), 3),
            "wall_s_min": round(min(w for w, _ in runs), 3),
            "peak_rss_mib_median": round(statistics.median(m for _, m in runs), 1),
        }
        for name, runs in samples.items()
    }
    reference = summary["reference (insightface-style script)"]
    for stats in summary.values():
        stats["wall_ratio"] = round(stats["wall_s_median"] / reference["wall_s_median"], 2)
        stats["rss_ratio"] = round(stats["peak_rss_mib_median"] / reference["peak_rss_mib_median"], 2)
    print(json.dumps({"runs": {name: len(runs) for name, runs in samples.items()}, "image": str(args.image), "weights": str(args.weights), "results": summary}, indent=1))


if __name__ == "__main__":
    main()
