"""Speed-accuracy sweep on CPU: facescope (models x ``long:N`` sizes x fp32 / int8) against YuNet
(``cv2.FaceDetectorYN`` x frame scales), on the same images, with the same clock.

    python benchmarks/sweep.py --out benchmarks/results --int8 scrfd_500m_kps=s500.int8.onnx scrfd_2.5g_kps=s25.int8.onnx
    python benchmarks/sweep.py --out /tmp/sweep --threads 1 --rounds 2 --sizes 320 640      # a quick one

Every configuration runs at its AP operating point (score >= 0.02; facescope: the ``widerface``
preset with ``input_size="long:N"``; YuNet: the frame resized by the scale, NMS 0.3, top 5000) on
the real WIDER FACE val images of the shared data (decoded once; latency = resize + network +
post-processing per image, decoding excluded). For each thread count a fresh process builds every
configuration and times them in ``--rounds`` rounds; in a round every image goes through every
configuration in turn (the order rotated per image), so a burst of load on a shared machine falls on
all configurations alike; a configuration's latency is the median over rounds of its mean ms per
image. Hard / medium / easy AP come from the first round's predictions (the
official protocol restricted to those images: a mini-benchmark). YuNet runs through OpenCV's DNN
engine with ``cv2.setNumThreads``; facescope through onnxruntime with ``intra_op_num_threads``.

Writes ``sweep.json``, ``sweep.md`` (the table, the int8 / fp32 ratios and, at every YuNet
operating point, the most accurate facescope configuration at no more latency) and
``sweep_speed_vs_accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.accuracy import mini_benchmark_ap  # noqa: E402

SCORE = 0.02
YUNET_SCALES = (0.5, 0.75, 1.0, 1.5)
MODELS = ("scrfd_500m_kps", "scrfd_2.5g_kps")
DEFAULT_SIZES = (320, 480, 640, 800, 960, 1120)


@dataclass(frozen=True)
class Config:
    """One operating point: ``facescope`` (model, weights, long side, precision) or ``yunet`` (scale)."""

    name: str
    kind: str
    weights: str
    model: str = ""
    long_side: int = 0
    precision: str = "fp32"
    scale: float = 1.0


def configs(shared: Path, sizes: list[int], int8: dict[str, str]) -> list[Config]:
    found = [Config(f"yunet x{s:g}", "yunet", str(shared / "weights/peers/face_detection_yunet.onnx"), scale=s) for s in YUNET_SCALES]
    for model in MODELS:
        files = {"fp32": str(shared / f"weights/scrfd/{model}.onnx"), **({"int8": int8[model]} if model in int8 else {})}
        for precision, weights in files.items():
            found += [Config(f"{model} long:{n} {precision}", "facescope", weights, model, n, precision) for n in sizes]
    return found


def build(config: Config, threads: int):  # noqa: ANN201 - a BGR image -> float32 [N, 5] callable
    import cv2

    cv2.setNumThreads(threads)
    if config.kind == "yunet":
        yunet = cv2.FaceDetectorYN.create(config.weights, "", (320, 320), SCORE, 0.3, 5000)

        def detect_yunet(bgr: np.ndarray) -> np.ndarray:
            height, width = bgr.shape[:2]
            size = (max(round(width * config.scale), 1), max(round(height * config.scale), 1))
            frame = bgr if size == (width, height) else cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
            yunet.setInputSize(size)
            _, faces = yunet.detect(frame)
            if faces is None:
                return np.zeros((0, 5), np.float32)
            boxes = faces[:, :4] / config.scale  # x, y, w, h in the original frame
            return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:], faces[:, 14:15]], axis=1)

        return detect_yunet
    from facescope import Detector

    detector = Detector(config.model, config.weights, preset="widerface", input_size=f"long:{config.long_side}", threads=threads, progress=False)

    def detect_facescope(bgr: np.ndarray) -> np.ndarray:
        faces = detector.detect(bgr, color_order="bgr")
        return np.concatenate([faces.boxes, faces.scores[:, None]], axis=1)

    return detect_facescope


def write_predictions(folder: Path, names: list[str], detections: list[np.ndarray]) -> None:
    for relative, dets in zip(names, detections):
        target = folder / Path(relative).with_suffix(".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [Path(relative).stem, str(len(dets))] + [f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f} {s:.5f}" for x1, y1, x2, y2, s in dets[:, :5]]
        target.write_text("\n".join(lines) + "\n")


def worker(args: argparse.Namespace) -> None:
    """One thread count: build every configuration, time ``--rounds`` rotated rounds, score AP."""
    import cv2

    images_root = args.shared / "widerface/WIDER_val/images"
    paths = sorted(images_root.rglob("*.jpg"))
    names = [str(p.relative_to(images_root)) for p in paths]
    images = [cv2.imread(str(p)) for p in paths]
    todo = [Config(**c) for c in json.loads(args.configs)]
    detectors = {c.name: build(c, args.threads) for c in todo}
    for c in todo:  # warm-up: one image each (session initialisation, first-size caches)
        detectors[c.name](images[0])
    per_round: dict[str, list[float]] = {c.name: [] for c in todo}
    ap: dict[str, dict[str, float]] = {}
    for round_index in range(args.rounds):
        seconds = {c.name: 0.0 for c in todo}
        outputs: dict[str, list[np.ndarray]] = {c.name: [] for c in todo}
        # image by image, every configuration in a rotated order: a burst of load falls on all alike
        for image_index, image in enumerate(images):
            shift = (image_index + round_index) % len(todo)
            for c in todo[shift:] + todo[:shift]:
                start = time.perf_counter()
                outputs[c.name].append(detectors[c.name](image))
                seconds[c.name] += time.perf_counter() - start
        for c in todo:
            per_round[c.name].append(1000 * seconds[c.name] / len(images))
            if round_index == 0:
                folder = args.out / "sweep_predictions" / f"{args.threads}t" / c.name.replace(" ", "_").replace(":", "")
                write_predictions(folder, names, outputs[c.name])
                ap[c.name] = mini_benchmark_ap(folder, args.shared / "widerface/ground_truth", c.name)
            print(f"  {args.threads}t round {round_index + 1}: {c.name:32s} {per_round[c.name][-1]:7.1f} ms/image", flush=True)
    rows = [
        {**asdict(c), "threads": args.threads, "ms": statistics.median(per_round[c.name]), "ms_rounds": per_round[c.name], "ap": ap[c.name]}
        for c in todo
    ]
    args.result.write_text(json.dumps(rows))


def run_threads(args: argparse.Namespace, todo: list[Config], threads: int) -> list[dict]:
    result = args.out / f"sweep_{threads}t.json"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    command = [sys.executable, __file__, "--worker", "--threads", str(threads), "--rounds", str(args.rounds), "--out", str(args.out),
               "--shared", str(args.shared), "--configs", json.dumps([asdict(c) for c in todo]), "--result", str(result)]  # fmt: skip
    subprocess.run(command, env=env, check=True)
    return json.loads(result.read_text())


def best_at_yunet_points(rows: list[dict]) -> list[dict]:
    """At every YuNet operating point and thread count: the most accurate (hard AP) facescope
    configuration at no more latency, and whether it is at least as accurate."""
    verdicts = []
    for threads in sorted({r["threads"] for r in rows}):
        ours = [r for r in rows if r["threads"] == threads and r["kind"] == "facescope" and isinstance(r["ap"], dict)]
        for peer in (r for r in rows if r["threads"] == threads and r["kind"] == "yunet" and isinstance(r["ap"], dict)):
            affordable = [r for r in ours if r["ms"] <= peer["ms"]]
            best = max(affordable, key=lambda r: r["ap"]["hard"], default=None)
            # the cheapest facescope configuration that is at least as accurate, whatever its latency
            accurate = min((r for r in ours if r["ap"]["hard"] >= peer["ap"]["hard"]), key=lambda r: r["ms"], default=None)
            verdicts.append({
                "threads": threads, "yunet": peer["name"], "yunet_ms": peer["ms"], "yunet_hard": peer["ap"]["hard"],
                "best": best["name"] if best else None, "best_ms": best["ms"] if best else None,
                "best_hard": best["ap"]["hard"] if best else None,
                "met": bool(best and best["ap"]["hard"] >= peer["ap"]["hard"]),
                "cheapest_as_accurate": accurate["name"] if accurate else None, "cheapest_as_accurate_ms": accurate["ms"] if accurate else None,
            })  # fmt: skip
    return verdicts


def int8_ratios(rows: list[dict]) -> list[dict]:
    by_key = {(r["threads"], r["model"], r["long_side"], r["precision"]): r for r in rows if r["kind"] == "facescope"}
    ratios = []
    for (threads, model, side, precision), row in sorted(by_key.items()):
        fp32 = by_key.get((threads, model, side, "fp32"))
        if precision == "int8" and fp32 and isinstance(row["ap"], dict) and isinstance(fp32["ap"], dict):
            ratios.append({"threads": threads, "model": model, "long_side": side, "int8_ms": row["ms"], "fp32_ms": fp32["ms"],
                           "ratio": row["ms"] / fp32["ms"], "hard_change": 100 * (row["ap"]["hard"] - fp32["ap"]["hard"]),
                           "easy_change": 100 * (row["ap"]["easy"] - fp32["ap"]["easy"]),
                           "medium_change": 100 * (row["ap"]["medium"] - fp32["ap"]["medium"])})  # fmt: skip
    return ratios


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [f"# Speed-accuracy sweep ({results['date']})", "", f"Command: `{results['command']}`; {results['images']} WIDER val images, "
             f"{results['rounds']} rounds, load average {results['load_average_start']} at the start, {results['load_average_end']} at the end.", ""]  # fmt: skip
    for threads in sorted({r["threads"] for r in rows}):
        lines += [f"## {threads} thread{'s' if threads > 1 else ''}", "", "| configuration | ms / image | AP easy | AP medium | AP hard |", "|---|---:|---:|---:|---:|"]
        for r in sorted((r for r in rows if r["threads"] == threads), key=lambda r: r["ms"]):
            ap = r["ap"] if isinstance(r["ap"], dict) else {"easy": float("nan"), "medium": float("nan"), "hard": float("nan")}
            lines.append(f"| {r['name']} | {r['ms']:.1f} | {ap['easy']:.4f} | {ap['medium']:.4f} | {ap['hard']:.4f} |")
        lines.append("")
    lines += ["## At every YuNet operating point: the most accurate facescope configuration at no more latency", "",
              "| threads | YuNet | YuNet ms | YuNet hard | facescope (<= YuNet's ms) | ms | hard | verdict |", "|---|---|---:|---:|---|---:|---:|---|"]  # fmt: skip
    for v in results["verdicts"]:
        if v["best"] is None:
            verdict = "**not met**: no facescope configuration is this fast"
        elif v["met"]:
            verdict = f"met (+{100 * (v['best_hard'] - v['yunet_hard']):.1f} points)"
        else:
            verdict = f"**not met** by {100 * (v['yunet_hard'] - v['best_hard']):.1f} points"
        if not v["met"] and v["cheapest_as_accurate"]:
            verdict += f"; {v['cheapest_as_accurate']} is as accurate at {v['cheapest_as_accurate_ms']:.1f} ms ({v['cheapest_as_accurate_ms'] / v['yunet_ms']:.2f}x)"
        best = "-" if v["best"] is None else f"{v['best']} | {v['best_ms']:.1f} | {v['best_hard']:.4f}"
        lines.append(f"| {v['threads']} | {v['yunet']} | {v['yunet_ms']:.1f} | {v['yunet_hard']:.4f} | {best if v['best'] else '- | - | -'} | {verdict} |")
    if results["int8"]:
        lines += ["", "## int8 / fp32 (same model, size and thread count)", "",
                  "| threads | model | long side | fp32 ms | int8 ms | int8 / fp32 | AP change easy / medium / hard (points) |", "|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
        for r in results["int8"]:
            lines.append(f"| {r['threads']} | {r['model']} | {r['long_side']} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['ratio']:.2f} | "
                         f"{r['easy_change']:+.2f} / {r['medium_change']:+.2f} / {r['hard_change']:+.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thread_counts = sorted({r["threads"] for r in results["rows"]})
    figure, axes = plt.subplots(1, len(thread_counts), figsize=(6.5 * len(thread_counts), 5), squeeze=False)
    for axis, threads in zip(axes[0], thread_counts):
        rows = [r for r in results["rows"] if r["threads"] == threads and isinstance(r["ap"], dict)]
        series: dict[str, list[dict]] = {}
        for r in rows:
            series.setdefault("YuNet" if r["kind"] == "yunet" else f"{r['model']} {r['precision']}", []).append(r)
        for label, points in series.items():
            points.sort(key=lambda r: r["ms"])
            axis.plot([p["ms"] for p in points], [p["ap"]["hard"] for p in points], "o-" if label != "YuNet" else "s--", label=label)
            for p in points:
                axis.annotate(f"x{p['scale']:g}" if p["kind"] == "yunet" else str(p["long_side"]), (p["ms"], p["ap"]["hard"]), fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("ms / image (log)")
        axis.set_ylabel("hard AP (38-image mini-set)")
        axis.set_title(f"{threads} thread{'s' if threads > 1 else ''}")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="long sides N of the facescope configurations")
    parser.add_argument("--int8", nargs="*", default=[], metavar="MODEL=FILE", help="int8 files (facescope quantize) to sweep too")
    parser.add_argument("--only", nargs="*", default=[], help="configurations whose name contains one of these")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--configs", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(argparse.Namespace(**{**vars(args), "threads": args.threads[0]}))
        return 0
    if not (args.shared / "widerface/WIDER_val/images").is_dir():
        print(f"sweep: shared data not found at {args.shared} (set FACESCOPE_SHARED_DATA)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    int8 = dict(item.split("=", 1) for item in args.int8)
    todo = [c for c in configs(args.shared, args.sizes, int8) if not args.only or any(o in c.name for o in args.only)]
    start_load = os.getloadavg()
    rows = [row for threads in args.threads for row in run_threads(args, todo, threads)]
    results = {
        "command": "python benchmarks/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "images": len(list((args.shared / "widerface/WIDER_val/images").rglob("*.jpg"))),
        "rounds": args.rounds, "load_average_start": [round(v, 1) for v in start_load], "load_average_end": [round(v, 1) for v in os.getloadavg()],
        "rows": rows,
    }  # fmt: skip
    results["verdicts"] = best_at_yunet_points(rows)
    results["int8"] = int8_ratios(rows)
    (args.out / "sweep.json").write_text(json.dumps(results, indent=1))
    (args.out / "sweep.md").write_text(markdown(results))
    plot(results, args.out / "sweep_speed_vs_accuracy.png")
    print(f"wrote {args.out / 'sweep.md'}, sweep.json, sweep_speed_vs_accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
