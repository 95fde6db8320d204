"""facescope speed / memory / accuracy benchmark against the reference pipeline and the peers.

    python benchmarks/run.py --out benchmarks/results
    python benchmarks/run.py --out benchmarks/results --peer-python /path/to/venv/bin/python
    python benchmarks/run.py --out benchmarks/results --report-only      # re-score AP, rewrite tables

Every (pipeline, frame size, threads) latency measurement runs in a fresh subprocess
(``benchmarks/worker.py``) with ``OMP/MKL/OPENBLAS_NUM_THREADS`` and the framework's own thread
setting at the requested count; each reports the median and p90 of ``--runs`` timed detections after
``--warmup`` untimed ones, and the process's peak RSS. Each configuration is measured ``--blocks`` times,
round-robin over all configurations; the table shows the median of the block medians. Latency is frame in (BGR numpy, already
decoded) to detections out, pre- and post-processing included. Ratios divide by the reference
pipeline (insightface model_zoo SCRFD on the official ONNX file) of the same frame size and thread
count, measured in the same run. Writes ``benchmark.json``, ``benchmark.md`` and
``speed_vs_accuracy.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.accuracy import NOT_AVAILABLE, mini_benchmark_ap  # noqa: E402
from benchmarks.pipelines import PipelineSpec, default_specs  # noqa: E402
from benchmarks.report import write_reports  # noqa: E402

WORKER = REPO / "benchmarks" / "worker.py"
DEFAULT_SIZES = ("640x480", "1920x1080")
OFFICIAL_SCRFD = {"scrfd_500m_kps": "weights/scrfd/scrfd_500m_kps.onnx", "scrfd_2.5g_kps": "weights/scrfd/scrfd_2.5g_kps.onnx"}
RETINAFACE_WEIGHTS = "weights/retinaface/mobilenet0.25_Final.pth"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    default_shared = os.environ.get("FACESCOPE_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    parser.add_argument("--shared", type=Path, default=Path(default_shared), help="shared data folder (FACESCOPE_SHARED_DATA)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement (>= 20 for the README table)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--blocks", type=int, default=3, help="fresh processes per configuration, round-robin (median of block medians)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="frame sizes WIDTHxHEIGHT")
    parser.add_argument("--image", type=Path, help="frame source (default: shared images/crowd/t1.jpg, resized)")
    parser.add_argument("--only", nargs="*", default=[], help="run only rows whose name contains one of these")
    parser.add_argument("--peer-python", default=os.environ.get("FACESCOPE_BENCH_PEER_PYTHON"),
                        help="second interpreter for peers whose packages are missing here (e.g. a venv with "
                             "opencv 4.x for Haar and ai-edge-litert for BlazeFace)")
    parser.add_argument("--paired-runs", type=int, default=60, help="alternating runs per pipeline for the target ratios (0 = skip)")
    parser.add_argument("--skip-accuracy", action="store_true", help="no AP mini-benchmark")
    parser.add_argument("--stream-frames", type=int, default=1000, help="frames for the streaming RSS benchmark (0 = skip)")
    parser.add_argument("--report-only", action="store_true", help="re-score AP from saved predictions and rewrite the reports")
    parser.add_argument("--paired-only", action="store_true", help="re-measure only the paired target ratios of a saved run")
    return parser.parse_args(argv)


def facescope_models(shared: Path) -> dict[str, Path]:
    """Registry models benchmarked, with their official weights (RetinaFace covered once registered)."""
    from facescope.models.registry import find_architectures_for
    from facescope.models.weights import read_state_dict

    models = {name: shared / rel for name, rel in OFFICIAL_SCRFD.items() if (shared / rel).exists()}
    retinaface = shared / RETINAFACE_WEIGHTS
    if retinaface.exists():  # every registered architecture this official checkpoint fits
        shapes = {k: tuple(v.shape) for k, v in read_state_dict(retinaface).items()}
        models.update({name: retinaface for name in find_architectures_for(shapes)})
    return models


def export_models(models: dict[str, Path], out: Path) -> tuple[dict[str, Path], dict[str, dict]]:
    """``facescope export`` every benchmarked model (parity-checked) into ``out/exports``."""
    from facescope.export import export_onnx

    exports, reports = {}, {}
    for model, weights in models.items():
        path = out / "exports" / f"{model}.onnx"
        try:
            result = export_onnx(model, path, weights=weights)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
            print(f"  export {model}: FAILED {exc}")
            reports[model] = {"error": str(exc)}
            continue
        exports[model] = path
        reports[model] = {"max_abs_diff": result.max_abs_diff, "checks": [c.__dict__ for c in result.checks]}
        print(f"  export {model}: {path.name}, onnxruntime vs PyTorch max abs diff {result.max_abs_diff:.2e}")
    return exports, reports


def worker(python: str, task: str, spec: PipelineSpec, threads: int, *extra: str, timeout: float = 1800) -> dict:
    """Run one worker task in a fresh process; returns its JSON or ``{"error": ...}``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [python, str(WORKER), task, "--spec", json.dumps(spec.to_dict()), "--threads", str(threads), *extra]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def choose_interpreters(specs: list[PipelineSpec], peer_python: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Interpreter per runnable row, and a skip note per row that can run nowhere."""
    chosen, skipped = {}, {}
    for spec in specs:
        candidates = [sys.executable] + ([peer_python] if peer_python else [])
        reasons = []
        for python in candidates:
            probe = worker(python, "probe", spec, 1, timeout=300)
            if probe.get("available"):
                chosen[spec.name] = python
                break
            reasons.append(f"{python}: missing {', '.join(probe.get('missing', [probe.get('error', '?')]))}")
        else:
            skipped[spec.name] = "; ".join(reasons)
            print(f"  skip {spec.name}: {skipped[spec.name]}")
    return chosen, skipped


def measure_latency(args: argparse.Namespace, specs: list[PipelineSpec], pythons: dict[str, str], image: Path) -> list[dict]:
    """Every (pipeline, size, threads) configuration ``--blocks`` times, each time in a fresh process
    with ``--runs`` timed detections; the blocks go round-robin over all configurations, so a burst of
    load on a shared machine hits one block of a configuration, not all of them. The reported median
    is the median of the block medians (robust to one disturbed block), p90 pools all runs."""
    configs = [(spec, size, threads) for spec in specs if spec.name in pythons for size in args.sizes for threads in args.threads]
    blocks: dict[tuple[str, str, int], list[dict]] = {}
    for block in range(args.blocks):
        print(f" block {block + 1}/{args.blocks}")
        for spec, size, threads in configs:
            start = time.perf_counter()
            result = worker(pythons[spec.name], "latency", spec, threads, "--size", size, "--image", str(image),
                            "--runs", str(args.runs), "--warmup", str(args.warmup))
            blocks.setdefault((spec.name, size, threads), []).append(result)
            shown = f"median {result['median_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, peak RSS {result['peak_rss_mb']:.0f} MiB" \
                if "median_ms" in result else result["error"]
            print(f"  {spec.name:45s} {size:>9s} {threads}t: {shown} ({time.perf_counter() - start:.0f} s)")
    return [{"name": name, "size": size, "threads": threads, **combine_blocks(results)} for (name, size, threads), results in blocks.items()]


def combine_blocks(results: list[dict]) -> dict:
    """One row from the blocks of a configuration: median of block medians, p90 over all runs, the
    largest peak RSS; an error if any block failed."""
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": errors[0]}
    times = [t for r in results for t in r["times_ms"]]
    return {
        "median_ms": float(statistics.median(r["median_ms"] for r in results)),
        "block_medians_ms": [r["median_ms"] for r in results],
        "p90_ms": float(statistics.quantiles(times, n=10)[-1]) if len(times) > 1 else times[0],
        "min_ms": min(times),
        "runs": len(times),
        "blocks": len(results),
        "warmup": results[0]["warmup"],
        "faces": results[-1]["faces"],
        "load_s": float(statistics.median(r["load_s"] for r in results)),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
    }


def measure_paired(args: argparse.Namespace, specs: list[PipelineSpec], pythons: dict[str, str], image: Path) -> list[dict]:
    """Load-robust ratios for the target rows: candidate and reference alternate frame by frame in
    one fresh process (``--paired-runs`` each)."""
    from benchmarks.report import TARGETS

    by_name = {s.name: s for s in specs}
    rows = []
    for name, reference, size, threads, _, _ in TARGETS:
        if not reference.startswith("reference-malloc/"):
            continue  # one process shares one allocator setting: paired runs compare like with like only
        if name not in by_name or reference not in by_name or name not in pythons or reference not in pythons:
            continue
        result = worker(pythons[name], "paired", by_name[name], threads, "--reference-spec", json.dumps(by_name[reference].to_dict()),
                        "--size", size, "--image", str(image), "--runs", str(args.paired_runs), "--warmup", str(args.warmup))
        rows.append({"name": name, "reference": reference, "size": size, "threads": threads, **result})
        shown = f"x{result['ratio']:.2f} ({result['median_ms']:.1f} vs {result['reference_median_ms']:.1f} ms)" if "ratio" in result else result["error"]
        print(f"  paired {name} vs {reference} {size} {threads}t: {shown}")
    return rows


def measure_accuracy(args: argparse.Namespace, specs: list[PipelineSpec], pythons: dict[str, str]) -> dict[str, dict]:
    """Predictions of every runnable row on the WIDER val images (threads: the largest requested)."""
    images = args.shared / "widerface" / "WIDER_val" / "images"
    results = {}
    for spec in specs:
        if spec.name not in pythons or spec.name.endswith("onnxruntime-official") or spec.name.startswith("reference-malloc/"):
            continue  # the official file through our backend equals the torch row (tested); malloc settings change no output
        folder = args.out / "predictions" / spec.name.replace("/", "__")
        result = worker(pythons[spec.name], "accuracy", spec, max(args.threads), "--images", str(images), "--predictions", str(folder))
        results[spec.name] = {"predictions": str(folder.relative_to(args.out)), **result}
        print(f"  {spec.name:45s} {result.get('detections', result.get('error'))} detections on {result.get('images', '?')} images")
    return results


def score_accuracy(out: Path, shared: Path, accuracy: dict[str, dict]) -> None:
    """Fill ``ap`` of every accuracy entry (a dict, or the reason it is n/a)."""
    gt_dir = shared / "widerface" / "ground_truth"
    for name, entry in accuracy.items():
        if "predictions" not in entry:
            entry["ap"] = entry.get("error", NOT_AVAILABLE)
            continue
        try:
            entry["ap"] = mini_benchmark_ap(out / entry["predictions"], gt_dir, name)
        except Exception as exc:  # noqa: BLE001 - an evaluator failure must not lose the timings
            entry["ap"] = f"n/a (evaluator failed: {type(exc).__name__}: {exc})"


def run_stream(args: argparse.Namespace, models: dict[str, Path], exports: dict[str, Path]) -> dict:
    if args.stream_frames <= 0 or "scrfd_500m_kps" not in models:
        return {}
    weights = exports.get("scrfd_500m_kps", models["scrfd_500m_kps"])
    command = [sys.executable, str(REPO / "benchmarks" / "stream.py"), "--frames", str(args.stream_frames),
               "--weights", str(weights), "--json", str(args.out / "stream.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(command, text=True, env=env)
    if done.returncode != 0 or not (args.out / "stream.json").exists():
        return {"error": f"stream benchmark exited {done.returncode}"}
    return json.loads((args.out / "stream.json").read_text())


def environment() -> dict:
    import platform

    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for module in ("torch", "onnxruntime", "cv2", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "benchmark.json"
    if args.paired_only:
        results = json.loads(json_path.read_text())
        specs = [PipelineSpec(**{k: v for k, v in s.items() if k != "python"}) for s in results["specs"]]
        pythons = {s["name"]: s["python"] for s in results["specs"] if s.get("python")}
        results["paired"] = measure_paired(args, specs, pythons, Path(results["settings"]["image"]))
        write_reports(results, args.out)
        return 0
    if args.report_only:
        results = json.loads(json_path.read_text())
        if (args.out / "stream.json").exists():  # a later `stream.py --json` run replaces the stream section
            results["stream"] = json.loads((args.out / "stream.json").read_text())
        score_accuracy(args.out, args.shared, results["accuracy"])
        write_reports(results, args.out)
        return 0
    if not args.shared.exists():
        print(f"benchmark: shared data not found at {args.shared} (set FACESCOPE_SHARED_DATA)", file=sys.stderr)
        return 2
    args.image = args.image or args.shared / "images" / "crowd" / "t1.jpg"
    env = environment()
    print("exporting facescope models (parity-checked)")
    models = facescope_models(args.shared)
    exports, export_reports = export_models(models, args.out)
    specs = [s for s in default_specs(args.shared, exports, models) if not args.only or any(o in s.name for o in args.only)]
    print("probing pipelines")
    pythons, skipped = choose_interpreters(specs, args.peer_python)
    print(f"latency: {len(args.sizes)} sizes x {len(args.threads)} thread counts, {args.runs} runs after {args.warmup} warm-up")
    latency = measure_latency(args, specs, pythons, args.image)
    print("paired target ratios")
    paired = measure_paired(args, specs, pythons, args.image) if args.paired_runs > 0 else []
    accuracy = {} if args.skip_accuracy else measure_accuracy(args, specs, pythons)
    score_accuracy(args.out, args.shared, accuracy)
    print("streaming")
    stream = run_stream(args, models, exports)
    results = {
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "environment": dict(env, load_average_end=os.getloadavg()),
        "settings": {"runs": args.runs, "blocks": args.blocks, "warmup": args.warmup, "sizes": args.sizes, "threads": args.threads, "image": str(args.image)},
        "specs": [dict(s.to_dict(), python=pythons.get(s.name)) for s in specs],
        "skipped": skipped,
        "exports": export_reports,
        "latency": latency,
        "paired": paired,
        "accuracy": accuracy,
        "stream": stream,
    }
    json_path.write_text(json.dumps(results, indent=1))
    write_reports(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
