"""The search folder: its population file and the per-trial folders (torch-free, Ray-free).

Layout of ``OUT``::

    population.json          the sampled architectures of one step (written once by ``sample``)
    trials/<id>/             one training run per architecture (checkpoints, result.json)
    trials/<id>/errors.jsonl every failed attempt of that trial, one JSON line each
    analysis/                what ``analyze`` writes (summary, plots, recommended recipe)
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facescope.errors import ConfigError
from facescope.fileio import atomic_write_text
from facescope.search.scrfd_cr.space import CRArchitecture

POPULATION_FILE = "population.json"
ERRORS_FILE = "errors.jsonl"


@dataclass(frozen=True)
class Member:
    """One sampled architecture: its id, the architecture, its GFLOPs and its training-free score."""

    trial_id: str
    arch: CRArchitecture
    gflops: float
    proxy_score: float | None = None


def trial_dir(search_dir: str | Path, trial_id: str) -> Path:
    return Path(search_dir) / "trials" / trial_id


def write_population(search_dir: str | Path, members: list[Member], settings: dict[str, Any]) -> Path:
    """Write ``population.json`` (refusing to replace one: a population is sampled once per folder)."""
    path = Path(search_dir) / POPULATION_FILE
    if path.exists():
        raise ConfigError(f"{path} exists: a search folder holds one population (use another --out, or `run` to continue)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "settings": settings,
        "members": [
            {"trial_id": m.trial_id, "model_args": m.arch.model_args(), "gflops": m.gflops, "proxy_score": m.proxy_score}
            for m in members
        ],
    }
    atomic_write_text(path, json.dumps(payload, indent=1))
    return path


def read_population(search_dir: str | Path) -> tuple[list[Member], dict[str, Any]]:
    """The members and settings of a search folder (a one-line error when it holds none)."""
    path = Path(search_dir) / POPULATION_FILE
    if not path.is_file():
        raise ConfigError(f"{search_dir}: no {POPULATION_FILE} (run `facescope search scrfd-cr sample --out {search_dir}` first)")
    payload = json.loads(path.read_text())
    members = [
        Member(m["trial_id"], CRArchitecture.from_model_args(m["model_args"]), m["gflops"], m.get("proxy_score"))
        for m in payload["members"]
    ]
    return members, payload["settings"]


def record_error(search_dir: str | Path, trial_id: str, error: BaseException) -> int:
    """Append a failed attempt to the trial's ``errors.jsonl``; returns how many attempts failed so far."""
    path = trial_dir(search_dir, trial_id) / ERRORS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error))[-4000:]}  # fmt: skip
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    return failed_attempts(search_dir, trial_id)


def failed_attempts(search_dir: str | Path, trial_id: str) -> int:
    path = trial_dir(search_dir, trial_id) / ERRORS_FILE
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def last_error(search_dir: str | Path, trial_id: str) -> str | None:
    path = trial_dir(search_dir, trial_id) / ERRORS_FILE
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])["error"] if lines else None
