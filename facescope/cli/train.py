"""``facescope train CONFIG``: train a detector from a recipe (one CPU to many GPUs via torchrun)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface
  facescope train configs/scrfd_500m_kps.yaml optim.lr=0.005 data.batch_size=4 runtime.out_dir=runs/try
  facescope train configs/scrfd_500m_kps.yaml --resume                 # continue runs/.../last.pth
  torchrun --nproc_per_node 4 -m facescope train configs/scrfd_2.5g_kps.yaml --data-root /data/widerface
  torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d \\
      --rdzv_endpoint host0:29500 -m facescope train configs/scrfd_34g.yaml
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a detector from a YAML recipe",
        description="Train from a recipe in configs/; key=value arguments override recipe entries.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="recipe YAML, e.g. configs/scrfd_500m_kps.yaml")
    parser.add_argument("overrides", nargs="*", help="recipe overrides such as optim.lr=0.005")
    parser.add_argument("--data-root", help="prefix for relative data paths in the recipe")
    parser.add_argument("--out", help="run folder (overrides runtime.out_dir)")
    parser.add_argument("--resume", nargs="?", const="auto", help="continue from a checkpoint (default <out>/last.pth)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facescope.config import load_yaml
    from facescope.engine.config import TrainConfig
    from facescope.engine.trainer import fit

    overrides = list(args.overrides) + ([f"runtime.out_dir={args.out}"] if args.out else [])
    config = load_yaml(TrainConfig, args.config, overrides).resolve_paths(args.data_root)
    last = fit(config, resume=args.resume, progress=not args.no_progress)
    print(f"facescope: training stopped; last checkpoint {last}")
    return 0
