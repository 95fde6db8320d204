"""``facescope train RECIPE [options] key=value ...``: train a detector from a recipe (one CPU to many GPUs
via torchrun).

``key=value`` overrides may come anywhere after the recipe, before, between or after the options;
their errors name the command-line argument. Recipe values are range-checked when the recipe is read,
before anything is built or written.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from facescope.errors import ConfigError

EXAMPLES = """examples:
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface optim.lr=0.005 data.batch_size=4
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface runtime.max_iters=5   # a short run
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface --resume             # continue <out>/last.pth
  facescope train configs/retinaface_paper_r50.yaml --data-root /data/widerface model_args.deformable=false  # a builder option
  torchrun --nproc_per_node 4 -m facescope train configs/scrfd_2.5g_kps.yaml --data-root /data/widerface
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d \\
      --rdzv_endpoint host0:29500 -m facescope train configs/scrfd_34g.yaml --data-root /data/widerface
"""

_OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")


def _add_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    """The options of ``facescope train`` (added twice: see :func:`register`)."""
    parser.add_argument("--data-root", metavar="DIR", default=default, help="prefix for relative data paths in the recipe")
    parser.add_argument("--out", metavar="DIR", default=default, help="run folder (overrides runtime.out_dir)")
    parser.add_argument(
        "--resume", nargs="?", const="auto", metavar="CHECKPOINT", default=default,
        help="continue from a checkpoint (default <out>/last.pth)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", default=default or False, help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector from a YAML recipe",
        usage="facescope train RECIPE [--data-root DIR] [--out DIR] [--resume [CHECKPOINT]] [--no-progress] [key=value ...]",
        description="Train from a recipe in configs/; key=value arguments (anywhere after the recipe) override recipe entries.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="RECIPE", help="recipe YAML, e.g. configs/scrfd_500m_kps.yaml")
    # Everything after the recipe (options and key=value, in any order) is parsed by parse_after_recipe:
    # argparse alone would stop at the first option and reject overrides that follow it.
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="key=value", help="recipe overrides such as optim.lr=0.005")
    _add_options(parser)
    parser.set_defaults(func=run)


def parse_after_recipe(rest: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split what follows the recipe into options and ``key=value`` overrides (any order)."""
    parser = argparse.ArgumentParser(prog="facescope train RECIPE", add_help=False)
    _add_options(parser, default=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    options = parser.parse_intermixed_args(rest)
    overrides = list(options.overrides)
    resume = getattr(options, "resume", None)
    if resume is not None and _OVERRIDE.match(resume) and not Path(resume).exists():
        overrides.insert(0, resume)  # `--resume optim.lr=0.1`: a bare --resume followed by an override
        options.resume = "auto"
    for item in overrides:
        if not _OVERRIDE.match(item):
            raise ConfigError(f"argument '{item}' is neither an option nor a recipe override key.sub=value")
    return options, overrides


def run(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    require_extra("facescope train", "torch", ("torch", "torchvision"))
    from facescope.config import load_yaml
    from facescope.engine.config import TrainConfig
    from facescope.engine.trainer import fit

    late, overrides = parse_after_recipe(list(args.rest))
    for name in ("data_root", "out", "resume", "no_progress"):
        if hasattr(late, name):
            setattr(args, name, getattr(late, name))
    overrides += [f"runtime.out_dir={args.out}"] if args.out else []
    config = load_yaml(TrainConfig, args.config, overrides).resolve_paths(args.data_root)
    last = fit(config, resume=args.resume, progress=not args.no_progress)
    from facescope.distributed import rank_world

    if rank_world()[0] == 0:  # one line for the run, not one per DDP rank (Ctrl-C ends in main's "interrupted")
        print(f"facescope: training finished; last checkpoint {last}")
    return 0
