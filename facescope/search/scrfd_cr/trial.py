"""One trial of the CR search: train one sampled architecture with the search recipe, then score it.

A trial is an ordinary training run: the recipe's ``model`` becomes ``scrfd_cr`` and its ``model_args``
the sampled architecture, so the checkpoint carries the architecture and rebuilds, evaluates and exports
like any model. The trial resumes its own training from ``<trial>/last.pth`` when that exists (a search
interrupted mid-trial does not start the trial over), and writes ``<trial>/result.json`` atomically when
it is scored: the file that tells a resumed search the trial is finished.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facescope.errors import ConfigError
from facescope.fileio import atomic_write_text

RESULT_FILE = "result.json"
SEARCH_MODEL = "scrfd_cr"


@dataclass(frozen=True)
class TrialSpec:
    """What one trial needs, picklable for a Ray task.

    Attributes:
        trial_id: the architecture's id in the population (``"s1-0003"``).
        model_args: the ``scrfd_cr`` builder options (a :class:`~.space.CRArchitecture`'s).
        recipe: the search recipe (a ``facescope train`` YAML).
        overrides: ``key=value`` overrides of the recipe (as on ``facescope train``).
        data_root: prefix of the recipe's relative data paths (``--data-root``), or None.
        trial_dir: the trial's output folder (checkpoints, ``result.json``).
        procs: processes of the trial's training; above 1 the training is a DDP group started by
            ``torchrun --standalone`` inside the trial (one GPU per process on GPUs, gloo on CPUs).
    """

    trial_id: str
    model_args: dict[str, Any]
    recipe: str
    overrides: tuple[str, ...]
    data_root: str | None
    trial_dir: str
    procs: int = 1


def read_result(trial_dir: str | Path) -> dict[str, Any] | None:
    """The finished trial's result, or None when the trial has not finished."""
    path = Path(trial_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_trial_config(spec: TrialSpec) -> Any:
    """The recipe with this trial's model, options and output folder (refused before any work if the
    recipe names another model or lacks the evaluation images the trial is scored on)."""
    from facescope.config import load_yaml
    from facescope.engine.config import TrainConfig

    config = load_yaml(TrainConfig, spec.recipe, list(spec.overrides)).resolve_paths(spec.data_root)
    if config.model != SEARCH_MODEL:
        raise ConfigError(f"{spec.recipe}: a CR search recipe trains model '{SEARCH_MODEL}', not '{config.model}'")
    if not (config.eval.images and config.eval.ground_truth):
        raise ConfigError(f"{spec.recipe}: a CR search recipe needs eval.images and eval.ground_truth (trials are scored on them)")
    runtime = dataclasses.replace(config.runtime, out_dir=spec.trial_dir)
    return dataclasses.replace(config, model_args=dict(spec.model_args), runtime=runtime)


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Train and score one architecture; returns (and writes) its result.

    Returns:
        ``{"trial_id", "status": "done", "ap": {"easy", "medium", "hard"}, "checkpoint", "iterations",
        "train_seconds", "model_args"}``.
    """
    import torch

    existing = read_result(spec.trial_dir)
    if existing is not None:  # finished in an earlier run of the search: never trained twice
        return existing
    config = load_trial_config(spec)
    Path(spec.trial_dir).mkdir(parents=True, exist_ok=True)
    last = Path(spec.trial_dir) / "last.pth"
    start = time.perf_counter()
    checkpoint = _train(spec, config, resume=last if last.is_file() else None)
    seconds = time.perf_counter() - start
    ap = score_checkpoint(config, checkpoint)
    iterations = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])
    result = {
        "trial_id": spec.trial_id,
        "status": "done",
        "ap": ap,
        "checkpoint": str(checkpoint),
        "iterations": iterations,
        "train_seconds": round(seconds, 1),
        "model_args": spec.model_args,
    }
    atomic_write_text(Path(spec.trial_dir) / RESULT_FILE, json.dumps(result, indent=1))
    return result


def _train(spec: TrialSpec, config: Any, resume: Path | None) -> Path:
    """Train in this process, or as a ``torchrun`` DDP group of ``spec.procs`` processes."""
    if spec.procs <= 1:
        from facescope.engine.trainer import fit

        return fit(config, resume=resume, progress=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={spec.procs}",
               "-m", "facescope", "train", spec.recipe, "--no-progress"]  # fmt: skip
    command += ["--data-root", spec.data_root] if spec.data_root else []
    command += ["--resume", str(resume)] if resume else []
    command += [*spec.overrides, f"runtime.out_dir={spec.trial_dir}"]
    command += [f"model_args.{key}={json.dumps(value)}" for key, value in spec.model_args.items()]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"torchrun training of {spec.trial_id} exited with {done.returncode}: {' | '.join(tail)}")
    return Path(spec.trial_dir) / "last.pth"


def score_checkpoint(config: Any, checkpoint: Path) -> dict[str, float]:
    """WIDER FACE AP (easy / medium / hard) of ``checkpoint`` on the recipe's evaluation images."""
    from facescope.eval import evaluate_detector_on_widerface
    from facescope.inference.detector import Detector

    detector = Detector(SEARCH_MODEL, checkpoint, preset=config.eval.preset, device="cpu")
    result = evaluate_detector_on_widerface(
        detector, config.eval.images, config.eval.ground_truth, None, progress=False, require_protocol_preset=False
    )
    return {key: round(float(value), 4) for key, value in result.ap.items()}
