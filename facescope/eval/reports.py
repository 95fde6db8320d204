"""Result tables (text + JSON) and curve plots (PNG) for the evaluators.

Plots use matplotlib's object API with the Agg canvas: no pyplot, no global backend switch, safe
in headless jobs and inside training loops.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facescope.eval.widerface import WiderFaceResult
from facescope.eval.widerface_io import SUBSETS
from facescope.fileio import atomic_path, atomic_write_text


def _percent(value: float | None) -> str:
    return "   -  " if value is None or math.isnan(value) else f"{100 * value:6.2f}"


def method_label(result: WiderFaceResult, index: int = 0) -> str:
    return result.name or f"method {index + 1}"


def mode_label(result: WiderFaceResult) -> str:
    """``"full val"`` or ``"MINI-BENCHMARK 38/3226 images"``."""
    if result.is_full:
        return f"full ({result.num_images} images)"
    return f"MINI-BENCHMARK {result.num_images}/{result.split_size} images"


def format_results_table(results: Sequence[WiderFaceResult], precision: str = "percent") -> str:
    """A text table: one row per method with easy/medium/hard AP, the challenge mAP (hard,
    IoU 0.50:0.95) and the evaluation mode. ``precision="full"`` prints APs as exact floats."""
    rows = []
    for i, result in enumerate(results):
        if precision == "full":
            aps = [repr(float(result.ap[s])) for s in SUBSETS]
        else:
            aps = [_percent(result.ap[s]) for s in SUBSETS]
        challenge = result.challenge_map["hard"] if result.challenge_map else None
        rows.append([method_label(result, i), *aps, _percent(challenge), mode_label(result)])
    header = ["method", "easy", "medium", "hard", "mAP(hard,.5:.95)", "images"]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(not r.is_full for r in results):
        lines.append(
            "NOTE: MINI-BENCHMARK rows cover only part of WIDER FACE val; they are not comparable with full-val "
            "(published) numbers."
        )
    for i, result in enumerate(results):
        lines.extend(f"note ({method_label(result, i)}): {note}" for note in result.notes)
    return "\n".join(lines)


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def result_to_json(result: WiderFaceResult, with_curves: bool = True) -> dict[str, Any]:
    """``WiderFaceResult.to_dict()`` plus, optionally, the PR curves (NaN precision -> null)."""
    payload = result.to_dict()
    payload["ap"] = {k: (None if math.isnan(v) else v) for k, v in payload["ap"].items()}
    if payload["challenge_map"] is not None:
        payload["challenge_map"] = {k: (None if math.isnan(v) else v) for k, v in payload["challenge_map"].items()}
    if result.ap_per_iou is not None:
        payload["ap_per_iou"] = {s: _finite_or_none(v) for s, v in result.ap_per_iou.items()}
    if with_curves:
        payload["curves"] = {
            subset: {
                "thresholds": _finite_or_none(curve.thresholds),
                "precision": _finite_or_none(curve.precision),
                "recall": _finite_or_none(curve.recall),
            }
            for subset, curve in result.curves.items()
        }
    return payload


def write_results(results: Sequence[WiderFaceResult], out_dir: str | Path, with_curves: bool = True) -> dict[str, Path]:
    """Write ``results.txt``, ``results.json`` and ``pr_{easy,medium,hard}.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table": out_dir / "results.txt", "json": out_dir / "results.json"}
    atomic_write_text(paths["table"], format_results_table(results) + "\n")
    payload = {"results": [result_to_json(r, with_curves) for r in results]}
    atomic_write_text(paths["json"], json.dumps(payload, indent=1) + "\n")
    for subset, path in plot_pr_curves(results, out_dir).items():
        paths[f"pr_{subset}"] = path
    return paths


def _new_figure(size: tuple[float, float] = (5.5, 4.5)) -> Any:
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> None:
    """Save a PNG atomically."""
    with atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")


def plot_pr_curves(results: Sequence[WiderFaceResult], out_dir: str | Path, prefix: str = "pr") -> dict[str, Path]:
    """One PNG per subset with every method's precision-recall curve, legend ordered by AP
    (like the WIDER FACE figures of the papers). Returns subset -> path."""
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for subset in SUBSETS:
        figure = _new_figure()
        axes = figure.add_subplot(1, 1, 1)
        order = sorted(range(len(results)), key=lambda i: -_sort_key(results[i].ap[subset]))
        for i in order:
            curve = results[i].curves[subset]
            keep = np.isfinite(curve.precision) & np.isfinite(curve.recall)
            label = f"{method_label(results[i], i)} ({_percent(results[i].ap[subset]).strip()})"
            axes.plot(curve.recall[keep], curve.precision[keep], linewidth=1.8, label=label)
        partial = any(not r.is_full for r in results)
        title = f"WIDER FACE val, {subset}" + (" (MINI-BENCHMARK, not full val)" if partial else "")
        axes.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.01), title=title)
        axes.grid(True, linestyle=":", linewidth=0.6)
        axes.legend(loc="lower left", fontsize=8)
        paths[subset] = out_dir / f"{prefix}_{subset}.png"
        save_figure(figure, paths[subset])
    return paths


def _sort_key(value: float) -> float:
    return -1.0 if math.isnan(value) else value
