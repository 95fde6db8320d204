"""Run a CR population's trainings as Ray tasks: per-trial resources, resume, retries.

Each trial is one Ray task with its own resources (``num_cpus``, ``num_gpus``). Locally, Ray starts in
this process with ``local_cpus`` CPUs (no cluster); with ``address`` it joins a running cluster
(``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others), and the search
folder must then be on storage every node sees. The driver keeps at most ``max_concurrent`` trials in
flight. A trial whose ``result.json`` exists is never run again, so an interrupted search continues with
the unfinished ones (and an unfinished trial resumes its own training from its last checkpoint). A
failed attempt is appended to the trial's ``errors.jsonl`` and retried up to ``retries`` times; then the
trial is given up and the search goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facescope.errors import ConfigError
from facescope.search.scrfd_cr.population import failed_attempts, read_population, record_error, trial_dir
from facescope.search.scrfd_cr.trial import TrialSpec, read_result, run_trial

EXTRA_HINT = 'the CR search runs on Ray: pip install "facescope[search]"'


def require_ray() -> Any:
    """Import Ray, or stop with one line naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(EXTRA_HINT) from None
    return ray


@dataclass(frozen=True)
class RunSettings:
    """How the trials run.

    Attributes:
        recipe: the search recipe (``model: scrfd_cr``, eval images and ground truth).
        overrides: ``key=value`` recipe overrides for every trial.
        data_root: prefix of the recipe's relative data paths.
        address: a Ray cluster to join (``"auto"``, ``"HOST:6379"``); None starts Ray in this process.
        local_cpus: CPUs of the in-process Ray instance (None: all of this machine's).
        cpus_per_trial / gpus_per_trial: each trial's Ray resources (for a DDP trial, of the whole group).
        procs_per_trial: processes of each trial's training (above 1: a torchrun DDP group).
        max_concurrent: trials in flight at once (None: as many as the resources allow).
        retries: extra attempts of a failed trial.
    """

    recipe: str
    overrides: tuple[str, ...] = ()
    data_root: str | None = None
    address: str | None = None
    local_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    procs_per_trial: int = 1
    max_concurrent: int | None = None
    retries: int = 1


@dataclass
class RunSummary:
    """What one ``run`` did: trials finished before it, finished by it, and given up."""

    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run_population(search_dir: str | Path, settings: RunSettings, on_event: Callable[[str], None] = print) -> RunSummary:
    """Train and score every unfinished member of the population in ``search_dir`` on Ray."""
    ray = require_ray()
    members, _ = read_population(search_dir)
    if not Path(settings.recipe).is_file():
        raise ConfigError(f"search recipe not found: {settings.recipe}")
    summary = RunSummary()
    pending: list[TrialSpec] = []
    for member in members:
        folder = trial_dir(search_dir, member.trial_id)
        if read_result(folder) is not None:
            summary.skipped.append(member.trial_id)
        elif failed_attempts(search_dir, member.trial_id) > settings.retries:
            summary.failed[member.trial_id] = "gave up in an earlier run (see errors.jsonl)"
        else:
            pending.append(_spec(member.trial_id, member.arch.model_args(), settings, folder))
    on_event(f"{len(summary.skipped)} trial(s) already finished, {len(pending)} to run, {len(summary.failed)} given up")
    if not pending:
        return summary
    _init_ray(ray, settings)
    try:
        _drive(ray, search_dir, pending, settings, summary, on_event)
    finally:
        ray.shutdown()
    return summary


def _spec(trial_id: str, model_args: dict[str, Any], settings: RunSettings, folder: Path) -> TrialSpec:
    return TrialSpec(trial_id, model_args, str(Path(settings.recipe).resolve()), settings.overrides,
                     settings.data_root, str(folder.resolve()), settings.procs_per_trial)  # fmt: skip


def _init_ray(ray: Any, settings: RunSettings) -> None:
    if settings.address:
        ray.init(address=settings.address, log_to_driver=False)
    else:
        # In-process instance: no dashboard, and each trial's threads limited to its CPU share.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(settings.cpus_per_trial))))
        ray.init(num_cpus=settings.local_cpus, include_dashboard=False, log_to_driver=False)


def _drive(ray: Any, search_dir: str | Path, pending: list[TrialSpec], settings: RunSettings, summary: RunSummary,
           on_event: Callable[[str], None]) -> None:  # fmt: skip
    task = ray.remote(num_cpus=settings.cpus_per_trial, num_gpus=settings.gpus_per_trial, max_retries=0)(run_trial)
    limit = settings.max_concurrent or len(pending)
    in_flight: dict[Any, TrialSpec] = {}
    queue = list(pending)
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            spec = queue.pop(0)
            in_flight[task.remote(spec)] = spec
            on_event(f"started {spec.trial_id}")
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        spec = in_flight.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as error:  # a trial's failure is recorded; the search goes on
            cause = getattr(error, "cause", None) or error
            attempts = record_error(search_dir, spec.trial_id, cause)
            if attempts <= settings.retries:
                queue.append(spec)
                on_event(f"{spec.trial_id} failed (attempt {attempts}): {cause}; retrying")
            else:
                summary.failed[spec.trial_id] = f"{type(cause).__name__}: {cause}"
                on_event(f"{spec.trial_id} failed (attempt {attempts}): {cause}; given up")
            continue
        summary.finished.append(spec.trial_id)
        on_event(f"finished {spec.trial_id}: hard AP {result['ap']['hard']:.4f}")
