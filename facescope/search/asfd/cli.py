"""The arguments of ``facescope search asfd`` (torch-free: the CLI builds its parser from them)."""

from __future__ import annotations

import argparse

from facescope.errors import ConfigError
from facescope.search import merge_late_options

EXAMPLES = """examples:
  facescope search asfd configs/asfd_supernet.yaml --data-root /data/widerface --out runs/asfd_search
  facescope search asfd configs/asfd_supernet.yaml --data-root /data/widerface --out runs/asfd_search --resume
  torchrun --nproc_per_node 4 -m facescope search asfd configs/asfd_supernet.yaml --data-root /data/widerface --out runs/asfd_search
  facescope train configs/asfd_d2.yaml --data-root /data/widerface model_args.genotype=runs/asfd_search/genotype.json
"""


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="search folder (required): the run's files, genotype.json, arch_history.*")
    parser.add_argument("--data-root", metavar="DIR", help="prefix for relative data paths in the recipe")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/last.pth (bit for bit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_options(parser)
    parser.add_argument("recipe", metavar="RECIPE", help="search recipe YAML (model asfd_supernet, optim.step_strategy bilevel)")
    # options may also follow the recipe, mixed with key=value overrides (as on `facescope train`)
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="key=value", help="recipe overrides such as optim.epochs=10")


def split_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Options and ``key=value`` overrides after the recipe, in any order, merged into ``args`` (as ``overrides``)."""
    merge_late_options(args, _add_options, "facescope search asfd")
    if not args.out:
        raise ConfigError("facescope search asfd needs --out DIR (the search folder)")
    return args
