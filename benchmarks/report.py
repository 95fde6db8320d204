"""Markdown / PNG reports of a benchmark run (``benchmark.json`` -> ``benchmark.md``, ``speed_vs_accuracy.png``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TARGETS = (
    # (row, reference, frame, threads, bound, label)
    ("facescope/scrfd_500m_kps/onnxruntime", "reference/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, own export"),
    ("facescope/scrfd_500m_kps/onnxruntime-official", "reference/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, official file"),
    ("facescope/scrfd_500m_kps/onnxruntime-letterbox", "reference/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, own export, 640x640 letterbox"),
    ("facescope/scrfd_500m_kps/onnxruntime-official-letterbox", "reference/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, official file, 640x640 letterbox"),
    ("facescope/scrfd_500m_kps/torch", "reference/scrfd_500m_kps", "640x480", 1, 1.5, "SCRFD-500M-kps PyTorch eager"),
    # the same targets against the reference given facescope's own glibc malloc settings (facescope.allocator)
    ("facescope/scrfd_500m_kps/onnxruntime", "reference-malloc/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, own export, vs malloc-tuned reference"),
    ("facescope/scrfd_500m_kps/onnxruntime-official", "reference-malloc/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps onnxruntime backend, official file, vs malloc-tuned reference"),
    ("facescope/scrfd_500m_kps/onnxruntime-letterbox", "reference-malloc/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps own export, 640x640 letterbox, vs malloc-tuned reference"),
    ("facescope/scrfd_500m_kps/onnxruntime-official-letterbox", "reference-malloc/scrfd_500m_kps", "640x480", 1, 0.85, "SCRFD-500M-kps official file, 640x640 letterbox, vs malloc-tuned reference"),
    ("facescope/scrfd_500m_kps/torch", "reference-malloc/scrfd_500m_kps", "640x480", 1, 1.5, "SCRFD-500M-kps PyTorch eager vs malloc-tuned reference"),
)
STREAM_TARGET = 5.0  # % RSS growth over the stream after warm-up
SIZE_NAMES = {"640x480": "VGA", "1920x1080": "HD"}


def add_ratios(results: dict) -> None:
    """``ratio``: median latency / the reference row's median at the same frame size and threads."""
    reference_of = {s["name"]: s.get("reference", "") for s in results["specs"]}
    medians = {(r["name"], r["size"], r["threads"]): r.get("median_ms") for r in results["latency"]}
    for row in results["latency"]:
        ref = medians.get((reference_of.get(row["name"]) or row["name"], row["size"], row["threads"]))
        row["ratio"] = row["median_ms"] / ref if ref and row.get("median_ms") else None


def _blocks_text(settings: dict) -> str:
    blocks = settings.get("blocks", 1)
    if blocks <= 1:
        return f"median and p90 of {settings['runs']} runs after {settings['warmup']} warm-up runs, each configuration in a fresh process."
    return (
        f"each configuration measured in {blocks} fresh processes, round-robin over all configurations ({settings['runs']} runs "
        f"after {settings['warmup']} warm-up runs each); median = the median of the {blocks} block medians (one disturbed "
        f"block cannot move it), p90 over all {blocks * settings['runs']} runs."
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def latency_tables(results: dict) -> list[str]:
    rows = [r for r in results["latency"] if "median_ms" in r]
    configs = [(s, t) for s in results["settings"]["sizes"] for t in results["settings"]["threads"]]
    header = "| pipeline | " + " | ".join(f"{SIZE_NAMES.get(s, s)} {t}T median ms (× ref)" for s, t in configs) + " |"
    lines = [header, "|" + "---|" * (len(configs) + 1)]
    for spec in results["specs"]:
        cells = []
        for size, threads in configs:
            match = [r for r in rows if r["name"] == spec["name"] and r["size"] == size and r["threads"] == threads]
            cells.append(f"{match[0]['median_ms']:.1f} (×{_fmt(match[0]['ratio'], 2)})" if match else "—")
        if any(c != "—" for c in cells):
            lines.append(f"| `{spec['name']}` | " + " | ".join(cells) + " |")
    lines += ["", "| pipeline | frame | threads | median ms | p90 ms | × reference | peak RSS MiB | faces | load s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results["latency"]:
        if "median_ms" not in r:
            lines.append(f"| `{r['name']}` | {r['size']} | {r['threads']} | error: {r.get('error')} | | | | | |")
            continue
        lines.append(
            f"| `{r['name']}` | {r['size']} | {r['threads']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{_fmt(r['ratio'], 2)} | {r['peak_rss_mb']:.0f} | {r['faces']} | {r['load_s']:.1f} |"
        )
    return lines


def accuracy_table(results: dict) -> list[str]:
    lines = ["| pipeline | AP easy | AP medium | AP hard | detections (38 images) |", "|---|---|---|---|---|"]
    for name, entry in results.get("accuracy", {}).items():
        ap = entry.get("ap")
        cells = [f"{ap[s]:.4f}" for s in ("easy", "medium", "hard")] if isinstance(ap, dict) else [str(ap), "", ""]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {entry.get('detections', '—')} |")
    return lines


def target_lines(results: dict) -> list[str]:
    medians = {(r["name"], r["size"], r["threads"]): r.get("median_ms") for r in results["latency"]}
    lines = []
    for row, ref, size, threads, bound, label in TARGETS:
        ours, theirs = medians.get((row, size, threads)), medians.get((ref, size, threads))
        if not ours or not theirs:
            lines.append(f"- {label}: not measured")
            continue
        ratio = ours / theirs
        verdict = "met" if ratio <= bound else f"MISSED by {100 * (ratio / bound - 1):.1f}%"
        lines.append(f"- {label} at {SIZE_NAMES.get(size, size)}, {threads} thread (separate processes): {ours:.1f} ms vs reference {theirs:.1f} ms = ×{ratio:.2f} (target ≤ ×{bound}): **{verdict}**")
        for pair in results.get("paired", []):
            same = (pair["name"], pair.get("reference"), pair["size"], pair["threads"]) == (row, ref, size, threads)
            if same and "ratio" in pair:
                verdict = "met" if pair["ratio"] <= bound else f"MISSED by {100 * (pair['ratio'] / bound - 1):.1f}%"
                lines.append(
                    f"  - paired (alternating frames in one process, {pair['runs']} runs each): {pair['median_ms']:.1f} ms vs "
                    f"{pair['reference_median_ms']:.1f} ms = ×{pair['ratio']:.2f}: **{verdict}**"
                )
    stream = results.get("stream") or {}
    for run in stream.get("runs", []):
        growth = run["growth_percent"]
        verdict = "met" if growth <= STREAM_TARGET else "MISSED"
        lines.append(
            f"- RSS over {run['frames']} streamed frames ({run['label']}): {run['rss_after_warmup_mb']:.1f} MiB after "
            f"{run['warmup_frames']} warm-up frames -> {run['rss_end_mb']:.1f} MiB at the end = {growth:+.2f}% "
            f"(target ≤ {STREAM_TARGET:.0f}%): **{verdict}**"
        )
    return lines


def _load(env: dict) -> str:
    def fmt(values: list[float]) -> str:
        return "/".join(f"{v:.2f}" for v in values)

    if "load_average_start" in env:
        return f"{fmt(env['load_average_start'])} at the start and {fmt(env['load_average_end'])} at the end"
    return f"{fmt(env['load_average'])} when the results were written"


def markdown(results: dict) -> str:
    env = results["environment"]
    settings = results["settings"]
    parts = [
        "# facescope benchmark",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {env['cpus']} CPUs, load average (1, 5, 15 min) {_load(env)}, "
        f"Python {env['python']}, torch {env['torch']}, onnxruntime {env['onnxruntime']}, OpenCV {env['cv2']}, numpy {env['numpy']} ({env['date']}).",
        "",
        f"Latency: frame `{Path(settings['image']).name}` resized to each size; {_blocks_text(settings)} × ref = median / the "
        "reference pipeline's median at the same size and thread count, in this run.",
        "",
        "## Targets",
        "",
        *target_lines(results),
        "",
        "## Latency",
        "",
        *latency_tables(results),
        "",
        "## Mini-benchmark AP (38 real WIDER FACE val images; not comparable with full-val numbers)",
        "",
        *accuracy_table(results),
        "",
        "## Pipelines",
        "",
        *[f"- `{s['name']}`: {s['note']}" + (f" (interpreter `{s['python']}`)" if s.get("python") else "") for s in results["specs"]],
        "",
    ]
    if results.get("skipped"):
        parts += ["## Skipped", "", *[f"- `{n}`: {why}" for n, why in results["skipped"].items()], ""]
    if results.get("exports"):
        parts += ["## Exports (onnxruntime vs PyTorch right after `facescope export`)", ""]
        parts += [f"- `{m}`: " + (f"max abs diff {e['max_abs_diff']:.2e}" if "max_abs_diff" in e else e["error"]) for m, e in results["exports"].items()]
        parts.append("")
    return "\n".join(parts)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = results["settings"]["sizes"][0]
    threads = min(results["settings"]["threads"])
    latency = {r["name"]: r["median_ms"] for r in results["latency"] if r["size"] == size and r["threads"] == threads and "median_ms" in r}
    accuracy = {n: e["ap"]["hard"] for n, e in results.get("accuracy", {}).items() if isinstance(e.get("ap"), dict)}
    fig, ax = plt.subplots(figsize=(10, 5))
    points = [(latency[n], accuracy[n], n) for n in latency if n in accuracy]
    if points:
        markers = "osD^v<>pP*Xh"
        for index, (x, y, name) in enumerate(points):
            ax.scatter(x, y, marker=markers[index % len(markers)], s=50, label=name)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.set_xscale("log")
        ax.set_ylabel("AP hard (38-image WIDER mini-benchmark)")
        ax.set_xlabel(f"median latency, ms ({SIZE_NAMES.get(size, size)}, {threads} thread, log scale)")
    else:
        names = sorted(latency, key=latency.get)
        ax.barh(names, [latency[n] for n in names])
        ax.set_xlabel(f"median latency, ms ({SIZE_NAMES.get(size, size)}, {threads} thread); AP {results.get('accuracy') and 'n/a' or 'not run'}")
        ax.tick_params(axis="y", labelsize=7)
    ax.set_title("facescope benchmark: speed vs accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_reports(results: dict, out: Path) -> None:
    """``benchmark.json`` (with ratios), ``benchmark.md`` and ``speed_vs_accuracy.png`` in ``out``."""
    import json

    add_ratios(results)
    _atomic_write(out / "benchmark.json", json.dumps(results, indent=1))
    _atomic_write(out / "benchmark.md", markdown(results))
    plot(results, out / "speed_vs_accuracy.png")
    print(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}, {out / 'speed_vs_accuracy.png'}")
