"""`facescope search scrfd-cr`: sampling into a folder, real Ray trials with kill + resume, retries, analysis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facescope.cli import main
from facescope.search.scrfd_cr.population import read_population
from tests.conftest import REPO, shared_path

RECIPE = REPO / "benchmarks/configs/wider38_scrfd_cr.yaml"
SMALL = ["--budget", "0.5", "--max-depth", "4", "--max-width", "64", "--neck-width", "16", "--head-width", "32"]
TINY_TRIAL = ["data.image_size=128", "runtime.max_iters=2", "data.batch_size=2"]


def test_sample_writes_a_population_once_and_step_two_needs_step_one(tmp_path: Path, capsys):
    out = tmp_path / "s1"
    assert main(["search", "scrfd-cr", "sample", "--out", str(out), "--count", "3", *SMALL]) == 0
    members, settings = read_population(out)
    assert [m.trial_id for m in members] == ["s1-0000", "s1-0001", "s1-0002"]
    assert settings["fixed"] == {"neck_width": 16, "head_convs": 2, "head_width": 32}
    assert all(0.49 <= m.gflops <= 0.51 for m in members)
    assert main(["search", "scrfd-cr", "sample", "--out", str(out), "--count", "3", *SMALL]) == 2
    assert "population.json exists" in capsys.readouterr().err
    assert main(["search", "scrfd-cr", "sample", "--out", str(tmp_path / "s2"), "--step", "2"]) == 2
    assert "--step 2 needs --from-step1" in capsys.readouterr().err


def test_prefilter_keeps_the_best_training_free_scores(tmp_path: Path):
    out = tmp_path / "pre"
    assert main(["search", "scrfd-cr", "sample", "--out", str(out), "--count", "2", "--prefilter", "3", *SMALL]) == 0
    members, _ = read_population(out)
    assert len(members) == 2 and members[0].proxy_score >= members[1].proxy_score


def _run_command(search_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "facescope", "search", "scrfd-cr", "run", str(search_dir), "--recipe", str(RECIPE),
            "--data-root", str(shared_path("")), "--cpus", "2", *extra, *TINY_TRIAL]  # fmt: skip


def _sampled_search(tmp_path: Path, edit_members=None) -> Path:
    """A search folder with two sampled members (``edit_members`` may change the member list in place)."""
    shared_path("widerface/WIDER_val/images")
    search_dir = tmp_path / "search"
    assert main(["search", "scrfd-cr", "sample", "--out", str(search_dir), "--count", "2", *SMALL]) == 0
    if edit_members is not None:
        population = json.loads((search_dir / "population.json").read_text())
        edit_members(population["members"])
        (search_dir / "population.json").write_text(json.dumps(population))
    return search_dir


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_killed_search_resumes_without_retraining_the_finished_trial(tmp_path: Path):
    search_dir = _sampled_search(tmp_path)
    first_result = search_dir / "trials/s1-0000/result.json"
    env = _env()
    # One trial at a time, so the search can be killed between the first and the second.
    process = subprocess.Popen(_run_command(search_dir, "--concurrent", "1"), env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while not first_result.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)  # the driver, its Ray instance and the running trial
    process.communicate()
    assert first_result.exists(), "the first trial did not finish"
    before = (first_result.read_bytes(), first_result.stat().st_mtime_ns)
    resumed = subprocess.run(_run_command(search_dir), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 trial(s) already finished, 1 to run" in resumed.stdout
    assert (first_result.read_bytes(), first_result.stat().st_mtime_ns) == before  # not retrained, not rewritten
    assert main(["search", "scrfd-cr", "analyze", str(search_dir), "--resamples", "200", "--no-plots"]) == 0
    summary = json.loads((search_dir / "analysis/summary.json").read_text())
    assert summary["trained"] == 2 and summary["members"] == 2
    recommended = (search_dir / "analysis/recommended.yaml").read_text()
    assert "model: scrfd_cr" in recommended and "model_args:" in recommended


@pytest.mark.slow
def test_a_failing_trial_is_recorded_retried_and_the_search_goes_on(tmp_path: Path):
    def break_second(members):
        members[1]["model_args"]["block"] = "no_such_block"  # the builder refuses it

    search_dir = _sampled_search(tmp_path, break_second)
    run = subprocess.run(_run_command(search_dir, "--retries", "1"), env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "finished 1 now, 0 earlier; given up: 1" in run.stdout
    errors = (search_dir / "trials/s1-0001/errors.jsonl").read_text().splitlines()
    assert len(errors) == 2 and "no_such_block" in json.loads(errors[-1])["error"]
    assert (search_dir / "trials/s1-0000/result.json").exists()


def test_run_without_ray_names_the_extra_in_one_line(tmp_path: Path):
    assert main(["search", "scrfd-cr", "sample", "--out", str(tmp_path / "s"), "--count", "2", *SMALL]) == 0
    blocker = "import sys; sys.modules['ray'] = None; from facescope.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", blocker, "search", "scrfd-cr", "run", str(tmp_path / "s"), "--recipe", str(RECIPE)],
                         capture_output=True, text=True, env=_env(), timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == 'facescope: error: the CR search runs on Ray: pip install "facescope[search]"'
    assert not (tmp_path / "s/trials").exists()  # nothing started


@pytest.mark.slow
def test_a_trial_trains_as_a_two_process_ddp_group(tmp_path: Path):
    search_dir = _sampled_search(tmp_path, lambda members: members.__delitem__(slice(1, None)))  # one member
    population = json.loads((search_dir / "population.json").read_text())
    run = subprocess.run(_run_command(search_dir, "--trial-procs", "2", "--trial-cpus", "2"), env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((search_dir / "trials/s1-0000/result.json").read_text())
    assert result["iterations"] == 2
    import torch

    saved = torch.load(result["checkpoint"], map_location="cpu", weights_only=True)
    assert saved["model_args"]["depths"] == population["members"][0]["model_args"]["depths"]
