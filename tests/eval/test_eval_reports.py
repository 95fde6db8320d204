"""Result tables, JSON and PR plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facescope.eval.reports import format_results_table, result_to_json, write_results
from facescope.eval.widerface import evaluate_widerface
from facescope.eval.widerface_io import WiderGroundTruth, WiderImage


def _result(name: str, split_size: int | None = None):  # noqa: ANN202
    images = [WiderImage("0--Parade", "a", np.array([[0.0, 0, 19, 19], [100, 0, 19, 19]]))]
    gt = WiderGroundTruth(images, {s: [np.array([0, 1])] for s in ("easy", "medium", "hard")}, "t", split_size)
    preds = {"0--Parade/a": np.array([[0, 0, 19, 19, 0.9], [300, 0, 19, 19, 0.8]])}
    return evaluate_widerface(preds, gt, name=name)


def test_table_marks_mini_benchmarks() -> None:
    full, mini = _result("full-run"), _result("mini-run", split_size=3226)
    table = format_results_table([full, mini])
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["method", "easy", "medium", "hard"]
    assert lines[2].split()[:4] == ["full-run", "50.00", "50.00", "50.00"]  # recall 1/2 at precision 1
    assert "MINI-BENCHMARK 1/3226 images" in lines[3]
    assert "not comparable with full-val" in table
    assert "0.5" in format_results_table([full], precision="full").splitlines()[2]


def test_json_and_plots(tmp_path: Path) -> None:
    result = _result("m")
    payload = result_to_json(result)
    assert payload["mode"] == "full" and payload["ap"]["hard"] == 0.5
    assert payload["curves"]["hard"]["precision"][0] == 1.0 and len(payload["curves"]["hard"]["recall"]) == 1000
    paths = write_results([result, _result("other")], tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert [r["name"] for r in loaded["results"]] == ["m", "other"]
    assert all(paths[f"pr_{s}"].read_bytes()[:4] == b"\x89PNG" for s in ("easy", "medium", "hard"))
