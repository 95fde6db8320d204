"""``facescope search asfd``: train the AutoFEM supernet bilevel and derive its genotype (see the package docstring).

The search is a training run of the recipe (the engine's loop, checkpoints, resume and torchrun support) with
an epoch-end hook that records the architecture weights; after the last epoch rank 0 writes the genotype.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facescope.errors import ConfigError
from facescope.fileio import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from facescope.engine.config import TrainConfig
    from facescope.engine.trainer import Trainer
    from facescope.models.autofem import SearchAutoFEM

GENOTYPE_FILE = "genotype.json"
HISTORY_FILE = "arch_history.json"
PLOT_FILE = "arch_history.png"
EXTRA_HINT = 'facescope search asfd needs the "search" extra (torch, matplotlib): pip install "facescope[search]"'


def main(args: argparse.Namespace) -> int:
    """Run the search; returns 0 (errors are one-line :class:`~facescope.errors.ConfigError`)."""
    from facescope.search.asfd.cli import split_arguments

    args = split_arguments(args)
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(EXTRA_HINT)
    out = Path(args.out)
    config = load_search_recipe(args.recipe, args.overrides, out, args.data_root)
    if args.resume and not (out / "last.pth").is_file():
        raise ConfigError(f"--resume: {out / 'last.pth'} does not exist (run the search without --resume first)")
    genotype_path = search(config, resume=args.resume, progress=not args.no_progress)
    if genotype_path is not None:
        print(f"facescope: search finished; genotype {genotype_path}; history {out / HISTORY_FILE}")
        print(f"  train it: facescope train configs/asfd_d0.yaml model_args.genotype={genotype_path}")
    return 0


def load_search_recipe(recipe: str | Path, overrides: list[str], out: Path, data_root: str | None) -> TrainConfig:
    """The recipe as a :class:`TrainConfig` writing to ``out``, checked to be a search: a model with a
    :class:`SearchAutoFEM` (``asfd_supernet``) and the ``bilevel`` step strategy."""
    from facescope.config import load_yaml
    from facescope.engine.config import TrainConfig

    config = load_yaml(TrainConfig, recipe, [*overrides, f"runtime.out_dir={out}"]).resolve_paths(data_root)
    if config.model != "asfd_supernet":
        raise ConfigError(f"{recipe}: model is '{config.model}'; the ASFD search trains 'asfd_supernet'")
    if config.optim.step_strategy != "bilevel":
        raise ConfigError(f"{recipe}: optim.step_strategy is '{config.optim.step_strategy}'; the ASFD search needs 'bilevel'")
    start = int(config.optim.step_options.get("architecture_start_epoch", 0))
    if start >= config.optim.epochs:
        raise ConfigError(
            f"{recipe}: optim.step_options.architecture_start_epoch={start} is not before optim.epochs={config.optim.epochs}: "
            "the architecture would never train (the genotype would come from the initial random logits)"
        )
    return config


def search(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path | None:
    """Train the supernet to the end of ``config``'s schedule, recording the architecture weights per epoch.

    Returns:
        The genotype file (rank 0; None on other ranks).
    """
    from facescope.distributed import cleanup, init_distributed
    from facescope.engine.trainer import build_trainer, restore, run

    info, device = init_distributed(config.runtime.device)
    try:
        trainer = build_trainer(config, info, device, progress)
        out = Path(config.runtime.out_dir)
        if resume:
            restore(trainer, out / "last.pth")
        history = History(out / HISTORY_FILE, trainer.state.epoch)
        if trainer.state.epoch and trainer.state.batch_in_epoch == 0:
            history.record(trainer)  # a run stopped between an epoch's checkpoint and its record (no-op when recorded)
        run(trainer, progress, on_epoch_end=history.record)
        if not info.is_main:
            return None
        history.record(trainer)  # the final weights (also after a run cut short by runtime.max_iters)
        genotype = supernet_fem(trainer).genotype()
        atomic_write_text(out / GENOTYPE_FILE, genotype.to_json())
        plot_history(history.entries, out / PLOT_FILE)
        return out / GENOTYPE_FILE
    finally:
        cleanup()


def supernet_fem(trainer: Trainer) -> SearchAutoFEM:
    """The trained model's search cells (``model.autofem``); a model without them is a configuration error."""
    from facescope.models.autofem import SearchAutoFEM

    fem = getattr(trainer.model, "autofem", None)
    if not isinstance(fem, SearchAutoFEM):
        raise ConfigError(f"{trainer.config.model} has no AutoFEM search cells (model.autofem)")
    return fem


class History:
    """``arch_history.json``: one entry per recorded point (epoch, step, softmax weights, derived genotype).

    Entries past ``resumed_epoch`` (written by a run that went further before it stopped) are dropped
    at the start, so a resumed search's history is the uninterrupted run's.
    """

    def __init__(self, path: Path, resumed_epoch: int) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        if path.is_file():
            saved = json.loads(path.read_text())["entries"]
            self.entries = [e for e in saved if e["epoch"] < resumed_epoch or (e["epoch"] == resumed_epoch and e["end_of_epoch"])]

    def record(self, trainer: Trainer) -> None:
        """Append the current architecture weights and genotype (rank 0; once per global step) and rewrite the file."""
        if not trainer.dist.is_main:
            return
        state = trainer.state
        if self.entries and self.entries[-1]["global_step"] == state.global_step:
            return  # already recorded at this step (the last epoch's end)
        fem = supernet_fem(trainer)
        self.entries.append(
            {
                "epoch": state.epoch,
                "end_of_epoch": state.batch_in_epoch == 0,
                "global_step": state.global_step,
                "weights": fem.weights_snapshot(),
                "genotype": json.loads(fem.genotype().to_json()),
            }
        )
        atomic_write_text(self.path, json.dumps({"entries": self.entries}))


def plot_history(entries: list[dict[str, Any]], path: Path) -> None:
    """Per op, its architecture weight summed over every CPM edge and node (upper) and FPN edge (lower), by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["global_step"] for e in entries]
    figure, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for axis, part, names_key in ((axes[0], "cpm", "cpm_ops"), (axes[1], "fpn", "fpn_ops")):
        names = entries[0]["weights"][names_key] if entries else []
        for op_index, name in enumerate(names):
            axis.plot(steps, [_op_share(e["weights"][part], op_index) for e in entries], marker="o", label=name)
        axis.set_ylabel(f"{part.upper()} op weight (mean)")
        axis.legend(fontsize=7, ncol=3)
    axes[1].set_xlabel("training step")
    figure.suptitle("ASFD AutoFEM search: architecture weights")
    figure.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)


def _op_share(weights: list[Any], op_index: int) -> float:
    """Mean over every edge (innermost lists are per-op weights) of op ``op_index``'s weight, re-normalised per edge."""
    edges: list[list[float]] = []

    def collect(node: Any) -> None:
        if node and isinstance(node[0], (int, float)):
            edges.append(node)
        else:
            for child in node:
                collect(child)

    collect(weights)
    return sum(edge[op_index] / max(sum(edge), 1e-12) for edge in edges) / max(len(edges), 1)
