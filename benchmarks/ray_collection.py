"""Ray Data collection throughput and memory against the single-process folder mode, in one run.

    python benchmarks/ray_collection.py --images 500 2000 --out benchmarks/results/ray_collection.json

Each configuration runs in a fresh process (its own session, so a local Ray instance and its workers
belong to it) on a folder of N symbolic links to the shared photos and WIDER val images, repeated:

* ``folder``: ``facescope detect FOLDER --json ... --threads T`` (the CLI, in-process in the worker);
  start-up = building the detector once beforehand, running rate = N / (command time - that start-up).
* ``ray-K``: :func:`facescope.scale.ray_data.run_collection` with K actors of T threads each, one CPU per
  actor; start-up = from the call to the first results (Ray start, actors, model load, first batch),
  running rate = the images after the first results over the time after them.

Peak memory: the largest sum over the session's processes of their proportional set size (PSS, from
``/proc/PID/smaps_rollup``: shared pages such as the object store counted once), sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def collection_folder(root: Path, count: int) -> Path:
    """``count`` links named ``img_00000.jpg`` ... to the shared photos and WIDER val images, in turn."""
    sources = sorted((SHARED / "images/photos").glob("*.jpg")) + sorted((SHARED / "widerface/WIDER_val/images").rglob("*.jpg"))
    folder = root / f"collection_{count}"
    folder.mkdir()
    for i in range(count):
        os.symlink(sources[i % len(sources)], folder / f"img_{i:05d}.jpg")
    return folder


def session_pss_mb(session: int) -> float:
    """Sum of PSS over the processes of ``session``, MiB."""
    total_kb = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:  # field 6 of stat: the session id
                continue
            with open(f"/proc/{entry}/smaps_rollup") as f:
                total_kb += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError, IndexError):
            continue
    return total_kb / 1024


def run_worker(args: list[str]) -> dict:
    """One configuration in a fresh process of its own session; its JSON result plus peak PSS."""
    process = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdout=subprocess.PIPE, text=True, start_new_session=True)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, session_pss_mb(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"worker {args} failed with exit code {process.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_s=time.perf_counter() - started, peak_pss_mb=peak)
    return result


def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("folder", "ray"))
    parser.add_argument("folder")
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="scrfd_500m_kps")
    parser.add_argument("--weights", required=True)
    args = parser.parse_args(argv)
    count = len(os.listdir(args.folder))
    if args.mode == "folder":
        from facescope import Detector
        from facescope.cli import main

        started = time.perf_counter()
        Detector(args.model, args.weights, threads=args.threads)
        startup = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            code = main(["detect", args.folder, "--model", args.model, "--weights", args.weights, "--threads", str(args.threads),
                         "--quiet", "--json", str(Path(tmp) / "faces.json")])  # fmt: skip
            total = time.perf_counter() - started
            faces = sum(len(record["faces"]) for record in json.loads((Path(tmp) / "faces.json").read_text())["images"])
        assert code == 0
        result = {"images": count, "startup_s": startup, "images_per_s": count / (total - startup), "faces": faces}
    else:
        import logging

        import ray.data

        from facescope.scale.ray_data import ClusterOptions, run_collection

        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        with tempfile.TemporaryDirectory() as tmp:
            cluster = ClusterOptions(actors=args.actors, batch_size=args.batch_size)
            summary = run_collection(args.folder, Path(tmp) / "out", cluster, model=args.model, weights=args.weights, threads=args.threads)
        assert summary.processed == count and summary.errors == 0
        result = {"images": count, "startup_s": summary.startup_s, "images_per_s": summary.images_per_second, "faces": summary.faces}
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[500, 2000], help="collection sizes (the first: every mode)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the folder mode and of each actor")
    parser.add_argument("--model", default="scrfd_500m_kps")
    parser.add_argument("--weights", default=str(SHARED / "weights/scrfd/scrfd_500m_kps.onnx"))
    parser.add_argument("--out", type=Path, help="JSON file of every number")
    args = parser.parse_args()
    common = ["--threads", str(args.threads), "--model", args.model, "--weights", args.weights]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, count in enumerate(args.images):
            folder = str(collection_folder(Path(tmp), count))
            configs = [("folder", []), ("ray-1", ["--actors", "1"]), ("ray-2", ["--actors", "2"])] if n == 0 else [("ray-1", ["--actors", "1"])]
            for name, extra in configs:
                result = run_worker([name.split("-")[0], folder, *extra, *common])
                result["config"] = name
                results.append(result)
                print(f"{name:7s} {count:5d} images: start-up {result['startup_s']:5.1f} s, {result['images_per_s']:5.1f} img/s once running, "
                      f"wall {result['wall_s']:6.1f} s, peak PSS {result['peak_pss_mb']:6.0f} MiB, {result['faces']} faces", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
