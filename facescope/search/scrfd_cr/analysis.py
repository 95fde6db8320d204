"""Reading a CR population: computation ratios against hard AP, the bootstrap, plots, a recommended recipe.

``analyze`` gathers every member of a search folder with its result, and writes to ``OUT/analysis/``:

* ``population.csv``: one row per member (ratios, GFLOPs, AP, training-free score, status);
* ``summary.json``: per component (stem, C2..C5; shallow = stem + C2 + C3; backbone / neck / head) the
  empirical-bootstrap interval of the best models' computation ratio, the best model, the rank
  correlation (Spearman) of the training-free score with hard AP, and the failed trials with their errors;
* ``figure5_backbone.png`` (ratio of each backbone component vs hard AP, bootstrap interval shaded),
  ``figure6_shallow.png`` (shallow-stage share), ``figure9_detector.png`` (backbone / neck / head);
* ``recommended.yaml``: a recipe ``facescope train`` accepts, training the recommended architecture (the most
  accurate member inside every interval; the most accurate overall, marked so in the summary, when none is).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from facescope.errors import ConfigError
from facescope.fileio import atomic_write_text
from facescope.search.scrfd_cr.bootstrap import BootstrapEstimate, empirical_bootstrap
from facescope.search.scrfd_cr.population import last_error, read_population, trial_dir
from facescope.search.scrfd_cr.space import CRArchitecture, component_macs
from facescope.search.scrfd_cr.trial import read_result

BACKBONE_PARTS = ("stem", "C2", "C3", "C4", "C5")
DETECTOR_PARTS = ("backbone", "neck", "head")


@dataclass(frozen=True)
class Row:
    """One member with its ratios and (when trained) its AP."""

    trial_id: str
    arch: CRArchitecture
    gflops: float
    ratios: dict[str, float]
    ap: dict[str, float] | None
    proxy_score: float | None
    error: str | None


def collect(search_dir: str | Path) -> list[Row]:
    """Every member of the population with its ratios, result and last error."""
    members, _ = read_population(search_dir)
    rows = []
    for member in members:
        parts = component_macs(member.arch)
        ratios = {**parts.backbone_ratios(), **parts.detector_ratios()}
        ratios["shallow"] = sum(ratios[k] for k in ("stem", "C2", "C3"))
        result = read_result(trial_dir(search_dir, member.trial_id))
        ap = result["ap"] if result else None
        rows.append(Row(member.trial_id, member.arch, member.gflops, ratios, ap, member.proxy_score,
                        None if ap else last_error(search_dir, member.trial_id)))  # fmt: skip
    return rows


def bootstrap_ratios(rows: list[Row], *, top_fraction: float, resamples: int, seed: int = 0) -> dict[str, BootstrapEstimate]:
    """The bootstrap interval of every ratio among the trained members (hard AP)."""
    trained = [r for r in rows if r.ap is not None]
    if len(trained) < 2:
        raise ConfigError(f"the analysis needs at least 2 trained members, this search has {len(trained)}")
    hard = np.array([r.ap["hard"] for r in trained])  # type: ignore[index]
    return {
        name: empirical_bootstrap(np.array([r.ratios[name] for r in trained]), hard, resamples=resamples,
                                  top_fraction=top_fraction, seed=seed)  # fmt: skip
        for name in (*BACKBONE_PARTS, "shallow", *DETECTOR_PARTS)
    }


def proxy_correlation(rows: list[Row]) -> float | None:
    """Spearman rank correlation of the training-free score with hard AP (None without two pairs)."""
    from scipy.stats import spearmanr

    pairs = [(r.proxy_score, r.ap["hard"]) for r in rows if r.ap is not None and r.proxy_score is not None]
    if len(pairs) < 3 or len({p for p, _ in pairs}) < 2 or len({a for _, a in pairs}) < 2:
        return None  # a constant column has no rank correlation
    rho = spearmanr([p for p, _ in pairs], [a for _, a in pairs]).statistic
    return None if np.isnan(rho) else float(rho)


def recommend(rows: list[Row], intervals: dict[str, BootstrapEstimate], parts: tuple[str, ...]) -> tuple[Row, bool]:
    """The most accurate trained member whose ratios of ``parts`` all lie in their bootstrap intervals, and
    True; or, when no member does, the most accurate member overall, and False."""
    trained = sorted((r for r in rows if r.ap is not None), key=lambda r: -r.ap["hard"])  # type: ignore[index]
    inside = [r for r in trained if all(intervals[p].contains(r.ratios[p]) for p in parts)]
    return (inside[0], True) if inside else (trained[0], False)


def analyze(search_dir: str | Path, *, base_recipe: str | Path | None = None, top_fraction: float = 0.0,
            resamples: int = 10_000, plots: bool = True) -> dict[str, Any]:  # fmt: skip
    """Write the analysis of ``search_dir`` into ``search_dir/analysis`` and return the summary."""
    rows = collect(search_dir)
    _, settings = read_population(search_dir)
    intervals = bootstrap_ratios(rows, top_fraction=top_fraction, resamples=resamples)
    step = int(settings.get("step", 1))
    best, inside = recommend(rows, intervals, BACKBONE_PARTS if step == 1 else (*BACKBONE_PARTS, *DETECTOR_PARTS))
    out = Path(search_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "step": step,
        "members": len(rows),
        "trained": sum(r.ap is not None for r in rows),
        "failed": {r.trial_id: r.error for r in rows if r.ap is None and r.error},
        "intervals": {name: vars(est) for name, est in intervals.items()},
        "recommended": {"trial_id": best.trial_id, "model_args": best.arch.model_args(), "ap": best.ap, "gflops": best.gflops,
                        "inside_intervals": inside},
        "proxy_spearman_hard_ap": proxy_correlation(rows),
        "backbone_ratio_bounds": {p: [intervals[p].low, intervals[p].high] for p in BACKBONE_PARTS},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    atomic_write_text(out / "population.csv", _csv(rows))
    recipe_source = Path(base_recipe or settings.get("recipe") or "")
    if recipe_source.is_file():
        atomic_write_text(out / "recommended.yaml", recommended_recipe(recipe_source, best))
    if plots:
        _plots(rows, intervals, out)
    return summary


def recommended_recipe(base_recipe: Path, best: Row) -> str:
    """``base_recipe`` with ``model: scrfd_cr`` and the recommended architecture as ``model_args``."""
    recipe = yaml.safe_load(base_recipe.read_text()) or {}
    recipe["model"] = "scrfd_cr"
    recipe["model_args"] = best.arch.model_args()
    header = (f"# CR search recommendation: trial {best.trial_id} (hard AP {best.ap['hard']:.4f} in the search), "  # type: ignore[index]
              f"{best.gflops:.3f} GFLOPs at 640x480\n# from {base_recipe.name}; train with: facescope train THIS_FILE\n")  # fmt: skip
    return header + yaml.safe_dump(recipe, sort_keys=False)


def _csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    ratio_names = (*BACKBONE_PARTS, "shallow", *DETECTOR_PARTS)
    writer = csv.writer(buffer)
    writer.writerow(["trial_id", "gflops", *ratio_names, "ap_easy", "ap_medium", "ap_hard", "proxy_score", "status", "model_args"])
    for r in rows:
        ap = [r.ap[k] for k in ("easy", "medium", "hard")] if r.ap else ["", "", ""]
        status = "done" if r.ap else ("failed" if r.error else "pending")
        writer.writerow([r.trial_id, f"{r.gflops:.4f}", *(f"{r.ratios[n]:.4f}" for n in ratio_names), *ap,
                         "" if r.proxy_score is None else f"{r.proxy_score:.4f}", status, json.dumps(r.arch.model_args())])  # fmt: skip
    return buffer.getvalue()


def _plots(rows: list[Row], intervals: dict[str, BootstrapEstimate], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r.ap is not None]
    hard = [r.ap["hard"] for r in trained]  # type: ignore[index]
    for name, parts in (("figure5_backbone", BACKBONE_PARTS), ("figure6_shallow", ("shallow",)), ("figure9_detector", DETECTOR_PARTS)):
        fig, axes = plt.subplots(1, len(parts), figsize=(3.2 * len(parts), 3.0), squeeze=False, sharey=True)
        for ax, part in zip(axes[0], parts):
            est = intervals[part]
            ax.axvspan(est.low, est.high, color="tab:orange", alpha=0.25, label="bootstrap 95 %")
            ax.scatter([r.ratios[part] for r in trained], hard, s=12, color="tab:blue")
            ax.set_xlabel(f"{part} computation ratio")
        axes[0][0].set_ylabel("hard AP")
        axes[0][0].legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
