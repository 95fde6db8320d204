"""``facescope search scrfd-cr sample|run|analyze``: the CR search's three commands.

This module is imported when the CLI is built, so it imports nothing heavy at the top; each command
imports its work (numpy, torch, Ray) when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facescope.errors import ConfigError
from facescope.search import merge_late_options



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sample``, ``run`` and ``analyze`` subcommands."""
    commands = parser.add_subparsers(dest="cr_command", metavar="{sample,run,analyze}")
    commands.required = True
    _add_sample(commands.add_parser("sample", help="sample a population of architectures within a GFLOP budget"))
    _add_run(commands.add_parser("run", help="train and score every unfinished member on Ray (resumable)"))
    _add_analyze(commands.add_parser("analyze", help="bootstrap the computation ratios, plot, write the recommended recipe"))


def _add_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="the search folder (created; must not hold a population)")
    p.add_argument("--step", type=int, choices=(1, 2), default=1, help="1: backbone only (neck and head fixed); 2: whole detector")
    p.add_argument("--budget", type=float, default=2.5, help="GFLOPs at 640x480 (paper-exact counting rule); default 2.5")
    p.add_argument("--tolerance", type=float, default=0.02, help="relative tolerance of the budget; default 0.02 (+-2 %%)")
    p.add_argument("--count", type=int, default=320, help="architectures to keep (the paper: 320 per step); default 320")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-depth", type=int, default=24, help="blocks per stage at most (paper: 24)")
    p.add_argument("--max-width", type=int, default=512, help="stage width at most, multiple of 8 (paper: 512)")
    p.add_argument("--neck-width", type=int, default=None, help="step 1: fixed neck width (default 32, the paper's at 2.5 GF)")
    p.add_argument("--head-convs", type=int, default=None, help="step 1: fixed head depth (default 2)")
    p.add_argument("--head-width", type=int, default=None, help="step 1: fixed head width (default 96)")
    p.add_argument("--from-step1", type=Path, default=None,
                   help="step 2: an analysed step-1 folder (its recommendation is the backbone template, its intervals the bounds)")
    p.add_argument("--proxy", action="store_true", help="score every kept architecture without training (DDSAR-style)")
    p.add_argument("--prefilter", type=int, default=1,
                   help="draw COUNT x PREFILTER architectures and keep the COUNT best by the training-free score (implies --proxy)")


def _add_run_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--recipe", required=required, type=Path, help="the trials' recipe (model: scrfd_cr, with eval.images / eval.ground_truth)")
    p.add_argument("--data-root", type=Path, default=None, help="prefix of the recipe's relative data paths")
    p.add_argument("--address", default=None, help="join a Ray cluster (e.g. auto or HEAD:6379); default: Ray starts in this process")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the in-process Ray instance (default: all)")
    p.add_argument("--trial-cpus", type=float, default=1.0, help="CPUs per trial; default 1")
    p.add_argument("--trial-gpus", type=float, default=0.0, help="GPUs per trial (of the whole DDP group); default 0")
    p.add_argument("--trial-procs", type=int, default=1, help="processes per trial: above 1 each trial trains as a torchrun DDP group; default 1")
    p.add_argument("--concurrent", type=int, default=None, help="trials in flight at once (default: as resources allow)")
    p.add_argument("--retries", type=int, default=1, help="extra attempts of a failed trial; default 1")


def _add_run(p: argparse.ArgumentParser) -> None:
    _add_run_options(p, required=False)
    p.add_argument("search_dir", type=Path, help="a folder written by `sample`")
    # Options may also follow the folder, mixed with key=value recipe overrides (as on `facescope train`).
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="key=value", help="recipe overrides for every trial (e.g. runtime.max_iters=300)")


def _split_run_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Options and ``key=value`` overrides after the folder, in any order, merged into ``args``."""
    merge_late_options(args, lambda parser: _add_run_options(parser, required=False), "facescope search scrfd-cr run")
    if args.recipe is None:
        raise ConfigError("facescope search scrfd-cr run needs --recipe RECIPE")
    return args


def _add_analyze(p: argparse.ArgumentParser) -> None:
    p.add_argument("search_dir", type=Path)
    p.add_argument("--base-recipe", type=Path, default=None, help="recipe the recommendation is written into (default: the run's recipe)")
    p.add_argument("--top-fraction", type=float, default=0.0, help="bootstrap the mean ratio of this best fraction (0: the single best); default 0")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--no-plots", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Run the chosen subcommand (a ConfigError becomes the CLI's one-line error, exit code 2)."""
    return {"sample": _sample, "run": _run, "analyze": _analyze}[args.cr_command](args)


def _sample(args: argparse.Namespace) -> int:
    from facescope.search.scrfd_cr.sampling import sample_population

    if args.count < 2 or args.prefilter < 1 or not 0 < args.tolerance < 1 or args.budget <= 0:
        raise ConfigError("--count must be >= 2, --prefilter >= 1, --tolerance in (0, 1) and --budget > 0")
    members = sample_population(args)
    print(f"sampled {len(members)} architectures within {args.budget} GF +-{args.tolerance:.0%} into {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from facescope.fileio import atomic_write_text
    from facescope.search.scrfd_cr.driver import RunSettings, require_ray, run_population

    args = _split_run_arguments(args)
    settings = RunSettings(
        recipe=str(args.recipe), overrides=tuple(args.overrides), data_root=str(args.data_root) if args.data_root else None,
        address=args.address, local_cpus=args.cpus, cpus_per_trial=args.trial_cpus, gpus_per_trial=args.trial_gpus,
        procs_per_trial=args.trial_procs, max_concurrent=args.concurrent, retries=args.retries,
    )  # fmt: skip
    require_ray()  # before anything is written
    run_record = {"recipe": str(args.recipe.resolve()), "overrides": list(args.overrides)}
    atomic_write_text(args.search_dir / "run.json", json.dumps(run_record))
    summary = run_population(args.search_dir, settings)
    print(f"finished {len(summary.finished)} now, {len(summary.skipped)} earlier; given up: {len(summary.failed)}")
    for trial_id, error in summary.failed.items():
        print(f"  {trial_id}: {error}")
    return 0 if not summary.failed else 1


def _analyze(args: argparse.Namespace) -> int:
    from facescope.search.scrfd_cr.analysis import analyze

    run_file = args.search_dir / "run.json"
    base = args.base_recipe or (Path(json.loads(run_file.read_text())["recipe"]) if run_file.is_file() else None)
    summary = analyze(args.search_dir, base_recipe=base, top_fraction=args.top_fraction, resamples=args.resamples, plots=not args.no_plots)
    print(f"{summary['trained']} of {summary['members']} trained; 95 % intervals of the best models' computation ratios:")
    for name, est in summary["intervals"].items():
        print(f"  {name:<8} [{est['low']:.3f}, {est['high']:.3f}]  median {est['median']:.3f}")
    rec = summary["recommended"]
    where = "inside every interval" if rec["inside_intervals"] else "no member lies inside every interval: the most accurate one"
    print(f"recommended: {rec['trial_id']} ({where}) hard AP {rec['ap']['hard']:.4f}, {rec['gflops']:.3f} GF -> {args.search_dir / 'analysis'}")
    if summary["proxy_spearman_hard_ap"] is not None:
        print(f"training-free score vs hard AP: Spearman {summary['proxy_spearman_hard_ap']:.3f}")
    return 0
