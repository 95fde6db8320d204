"""Cold start of one detection: ``facescope detect`` vs a minimal insightface-style script.

Every run is a fresh process; its peak RSS and CPU time (user + system) are the kernel's account of that
process alone (``wait4``), so the benchmark's own memory is not counted. The commands alternate so that
machine load hits them alike. One untimed run of each command comes first; the timed ones read Python
bytecode from a cache as an installed package does (see :func:`bytecode_env`). Prints a JSON summary
(medians) and the ratios against the reference. Wall time is the figure that counts; the CPU time beside
it moves less when other jobs load the machine (waiting for a core is not in it).

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


def run_once(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds: user + system) of one fresh process, from the kernel's
    account of that process alone (``wait4``: what ``/usr/bin/time`` reports, at microsecond resolution)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


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
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cmds}
        torch_runs = args.runs if args.torch_runs is None else args.torch_runs
        for round_index in range(args.runs):
            for name, command in cmds.items():  # alternate: one run of each per round
                if "torch" in name and round_index >= torch_runs:
                    continue
                samples[name].append(run_once(command, env))
                wall, peak, cpu = samples[name][-1]
                print(json.dumps({"round": round_index, "command": name, "wall_s": round(wall, 3), "peak_rss_mib": round(peak, 1),
                                  "cpu_s": round(cpu, 2)}), file=sys.stderr, flush=True)
    summary = {
        name: {
            "wall_s_median": round(statistics.median(w for w, _, _ in runs), 3),
            "wall_s_min": round(min(w for w, _, _ in runs), 3),
            "peak_rss_mib_median": round(statistics.median(m for _, m, _ in runs), 1),
            "cpu_s_median": round(statistics.median(c for _, _, c in runs), 3),
        }
        for name, runs in samples.items()
    }
    reference = summary["reference (insightface-style script)"]
    for stats in summary.values():
        stats["wall_ratio"] = round(stats["wall_s_median"] / reference["wall_s_median"], 2)
        stats["rss_ratio"] = round(stats["peak_rss_mib_median"] / reference["peak_rss_mib_median"], 2)
        stats["cpu_ratio"] = round(stats["cpu_s_median"] / reference["cpu_s_median"], 2)
    print(json.dumps({"runs": {name: len(runs) for name, runs in samples.items()}, "image": str(args.image), "weights": str(args.weights), "results": summary}, indent=1))


if __name__ == "__main__":
    main()
