"""Does training learn on real data? Mini-benchmark AP (the 38 real WIDER FACE val images of ../shared/data)
before and after a training run, for the recipes in benchmarks/configs/ (the model is the recipe's):

* ``scratch``  - scrfd_500m_kps from random init (wider38_scratch_320.yaml: 2,500 iterations at 320 px);
* ``finetune`` - scrfd_500m_kps from the official weights (wider38_finetune_scrfd_500m_kps.yaml: 50 iterations);
  the AP must stay within one point of the official weights';
* ``shf_mnet025`` - SHF with the ImageNet MobileNetV1-0.25 body and hard image mining on
  (wider38_shf_mnet025.yaml); scored with the SHF preset ``widerface_light`` (SCORING_PRESETS: the release's
  pyramid without its up-scaled passes, 100/300/600 of the 800/1200 base with flips, box voting 0.4; the full
  ``widerface`` pyramid costs about four times as much). The JSON also records the hard image miner's
  per-epoch log (images marked easy when each epoch started, skipped, trained), from the last checkpoint.
* ``dsfd_mnet025`` - DSFD's small variant from its ImageNet MobileNet body (wider38_dsfd_mnet025.yaml: 750
  iterations at 320 px), scored single-pass with its ``widerface`` preset.
* ``asfd`` - ASFD end to end: the proxy AutoFEM search (wider38_asfd_search.yaml, ``facescope search asfd``'s
  code path: 80 bilevel epochs on the 38 images split in two halves), then ``asfd_d0`` built from the genotype it
  found (``model_args.genotype``) and trained from its ImageNet MobileNet body (wider38_asfd_d0.yaml: 750
  iterations at 320 px), scored single-pass with the ``official`` preset (ASFD's ``widerface`` preset is the
  multi-scale test). The JSON records the search's minutes, its genotype and the file's sha256.

    python benchmarks/learning_check.py [scratch] [finetune] [--out runs/learning_check]

The models are trained and scored on the same 38 images: this checks that the training machinery learns, it
is not a generalisation result. Writes ``<out>/learning_check.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))
RECIPES = {
    "scratch": REPO / "benchmarks/configs/wider38_scratch_320.yaml",
    "finetune": REPO / "benchmarks/configs/wider38_finetune_scrfd_500m_kps.yaml",
    "shf_mnet025": REPO / "benchmarks/configs/wider38_shf_mnet025.yaml",
    "dsfd_mnet025": REPO / "benchmarks/configs/wider38_dsfd_mnet025.yaml",
    "asfd": REPO / "benchmarks/configs/wider38_asfd_d0.yaml",
}
#: runs that first search an architecture: the search recipe, whose genotype the trained model takes
SEARCHES = {"asfd": REPO / "benchmarks/configs/wider38_asfd_search.yaml"}
SCORING_PRESETS = {"shf_mnet025": "widerface_light", "asfd": "official"}  # other runs: the model's "widerface" preset


def mini_benchmark_ap(
    model_name: str, weights: Path | None, seed: int = 0, preset: str = "widerface", model_args: dict | None = None
) -> dict[str, float]:
    """AP of ``model_name`` (seed-``seed`` random init when ``weights`` is None; builder options ``model_args``)
    on the 38 images, with the model's ``preset`` (single pass unless that preset names a test-time augmentation)."""
    from facescope.eval import evaluate_detector_on_widerface
    from facescope.inference.detector import Detector
    from facescope.models import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, weights, **(model_args or {}))
    detector = Detector(model, preset=preset)
    result = evaluate_detector_on_widerface(
        detector, SHARED / "widerface/WIDER_val/images", SHARED / "widerface/ground_truth", None, progress=False,
        require_protocol_preset=preset == "widerface",  # another preset is this check's own scoring choice
    )
    return {k: round(float(v), 4) for k, v in result.ap.items()}


def run(name: str, out: Path) -> dict[str, object]:
    from facescope.config import load_yaml
    from facescope.engine.config import TrainConfig
    from facescope.engine.trainer import fit

    overrides = [f"runtime.out_dir={out / name}"]
    searched = search_first(name, out) if name in SEARCHES else {}
    if searched:
        overrides.append(f"model_args.genotype={searched['genotype_file']}")
    config = load_yaml(TrainConfig, RECIPES[name], overrides).resolve_paths(SHARED)
    init = Path(config.init_weights) if config.init_weights else None
    preset = SCORING_PRESETS.get(name, "widerface")
    before = mini_benchmark_ap(config.model, init, config.runtime.seed, preset, dict(config.model_args))
    start = time.perf_counter()
    last = fit(config, progress=True)
    minutes = (time.perf_counter() - start) / 60
    after = mini_benchmark_ap(config.model, last, preset=preset)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    result = {"recipe": str(RECIPES[name].relative_to(REPO)), "model": config.model, "preset": preset, "before": before, "after": after,
              "iterations": checkpoint["global_step"], "wall_minutes": round(minutes, 1), "threads": torch.get_num_threads()}  # fmt: skip
    if searched:
        result["search"] = searched
    if "epoch_log" in checkpoint.get("sampler", {}):  # the hard image mining sampler's record
        result["miner_epochs"] = checkpoint["sampler"]["epoch_log"]
        result["miner_easy_final"] = len(checkpoint["sampler"]["miner"]["easy"])
    return result


def search_first(name: str, out: Path) -> dict[str, object]:
    """Run the architecture search of ``name`` (resuming a finished or cut-short one in ``out``); its genotype."""
    import hashlib

    from facescope.search.asfd.run import GENOTYPE_FILE, load_search_recipe, search

    folder = out / f"{name}_search"
    config = load_search_recipe(SEARCHES[name], [], folder, str(SHARED))
    start = time.perf_counter()
    genotype = search(config, resume=(folder / "last.pth").is_file(), progress=True) or folder / GENOTYPE_FILE
    minutes = (time.perf_counter() - start) / 60
    checkpoint = torch.load(folder / "last.pth", map_location="cpu", weights_only=True)
    return {
        "recipe": str(SEARCHES[name].relative_to(REPO)), "iterations": checkpoint["global_step"], "wall_minutes": round(minutes, 1),
        "genotype_file": str(genotype), "genotype_sha256": hashlib.sha256(genotype.read_bytes()).hexdigest(),
        "genotype": json.loads(genotype.read_text()),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", default=["scratch", "finetune"], choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("runs/learning_check"))
    args = parser.parse_args()
    if not (SHARED / "widerface/WIDER_val/images").is_dir():
        print(f"skipped: shared data not found at {SHARED} (set FACESCOPE_SHARED_DATA)")
        return 0
    results = {name: run(name, args.out) for name in args.runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_check.json").write_text(json.dumps(results, indent=1))
    print(f"{'run':<9} {'AP before (E/M/H)':<26} {'AP after (E/M/H)':<26} {'iterations':>10} {'minutes':>8}")
    for name, r in results.items():
        before = " / ".join(f"{r['before'][k]:.3f}" for k in ("easy", "medium", "hard"))
        after = " / ".join(f"{r['after'][k]:.3f}" for k in ("easy", "medium", "hard"))
        print(f"{name:<9} {before:<26} {after:<26} {r['iterations']:>10} {r['wall_minutes']:>8}")
        if "miner_epochs" in r:
            log = r["miner_epochs"]
            print(f"  hard image mining, images marked easy when each epoch started: {[e['easy'] for e in log]}")
            print(f"  skipped per epoch: {[e['skipped'] for e in log]}; marked easy at the end: {r['miner_easy_final']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
