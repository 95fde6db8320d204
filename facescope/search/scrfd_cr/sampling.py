"""``sample``: the population of one step, written to the search folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from facescope.errors import ConfigError
from facescope.search.scrfd_cr.population import Member, write_population
from facescope.search.scrfd_cr.space import CRArchitecture, CRSpace, component_macs, sample_within_budget

PAPER_STEP1_FIXED = {"neck_width": 32, "head_convs": 2, "head_width": 96}  # SCRFD1 at 2.5 GF (section 4.2)


def step_space(args: argparse.Namespace) -> CRSpace:
    """The space of ``args.step``: step 1 fixes neck and head; step 2 follows a step-1 analysis."""
    bounds = {"max_depth": args.max_depth, "max_width": args.max_width}
    if args.step == 1:
        if args.from_step1 is not None:
            raise ConfigError("--from-step1 is for --step 2")
        fixed = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in PAPER_STEP1_FIXED.items()}
        return CRSpace(**bounds, fixed_neck_width=fixed["neck_width"], fixed_head_convs=fixed["head_convs"],
                       fixed_head_width=fixed["head_width"])  # fmt: skip
    if args.from_step1 is None:
        raise ConfigError("--step 2 needs --from-step1 DIR (an analysed step-1 search folder)")
    summary_path = Path(args.from_step1) / "analysis" / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{summary_path} not found: run `facescope search scrfd-cr analyze {args.from_step1}` first")
    summary = json.loads(summary_path.read_text())
    template = CRArchitecture.from_model_args(summary["recommended"]["model_args"])
    ratio_bounds = {k: (float(v[0]), float(v[1])) for k, v in summary["backbone_ratio_bounds"].items()}
    return CRSpace(**bounds, template=template, backbone_ratio_bounds=ratio_bounds)


def sample_population(args: argparse.Namespace) -> list[Member]:
    """Sample, optionally score without training and pre-filter, and write ``population.json``."""
    space = step_space(args)
    if (Path(args.out) / "population.json").exists():
        raise ConfigError(f"{args.out}/population.json exists: a search folder holds one population")
    drawn = sample_within_budget(space, args.budget, args.count * args.prefilter, tolerance=args.tolerance, seed=args.seed)
    scores: list[float | None] = [None] * len(drawn)
    if args.proxy or args.prefilter > 1:
        from facescope.search.scrfd_cr.proxy import ddsar_score

        scores = [ddsar_score(arch) for arch in tqdm(drawn, desc="training-free scores", unit="arch")]
    order = sorted(range(len(drawn)), key=lambda i: -(scores[i] or 0.0))[: args.count] if args.prefilter > 1 else range(len(drawn))
    members = [
        Member(f"s{args.step}-{n:04d}", drawn[i], round(component_macs(drawn[i]).total / 1e9, 4), scores[i])
        for n, i in enumerate(order)
    ]
    write_population(args.out, members, _settings(args, space))
    return members


def _settings(args: argparse.Namespace, space: CRSpace) -> dict[str, Any]:
    return {
        "step": args.step,
        "budget_gflops": args.budget,
        "tolerance": args.tolerance,
        "count": args.count,
        "seed": args.seed,
        "prefilter": args.prefilter,
        "max_depth": space.max_depth,
        "max_width": space.max_width,
        "fixed": {"neck_width": space.fixed_neck_width, "head_convs": space.fixed_head_convs, "head_width": space.fixed_head_width},
        "template": space.template.model_args() if space.template else None,
        "backbone_ratio_bounds": space.backbone_ratio_bounds,
    }
