"""The benchmark harness: worker processes, ratios, target verdicts and reports (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `benchmarks/` lives at the repo root, outside the package

from benchmarks.accuracy import NOT_AVAILABLE, mini_benchmark_ap  # noqa: E402
from benchmarks.pipelines import PipelineSpec  # noqa: E402
from benchmarks.report import add_ratios, markdown, write_reports  # noqa: E402
from benchmarks.run import combine_blocks  # noqa: E402


def synthetic_results() -> dict:
    ref, ort, torch_row = "reference/scrfd_500m_kps", "facescope/scrfd_500m_kps/onnxruntime", "facescope/scrfd_500m_kps/torch"
    row = {"p90_ms": 1.0, "peak_rss_mb": 100.0, "faces": 6, "load_s": 0.1}
    return {
        "command": "python benchmarks/run.py",
        "environment": {"cpus": 2, "load_average_start": [1, 1, 1], "load_average_end": [2, 2, 2], "python": "3.11",
                        "torch": "x", "onnxruntime": "x", "cv2": "x", "numpy": "x", "date": "today"},
        "settings": {"runs": 20, "warmup": 3, "sizes": ["640x480"], "threads": [1], "image": "t1.jpg"},
        "specs": [{"name": ref, "note": "r"}, {"name": ort, "reference": ref, "note": "o"}, {"name": torch_row, "reference": ref, "note": "t"}],
        "latency": [dict(row, name=ref, size="640x480", threads=1, median_ms=40.0),
                    dict(row, name=ort, size="640x480", threads=1, median_ms=32.0),
                    dict(row, name=torch_row, size="640x480", threads=1, median_ms=80.0)],
        "paired": [{"name": torch_row, "reference": ref, "size": "640x480", "threads": 1, "median_ms": 50.0,
                    "reference_median_ms": 40.0, "ratio": 1.25, "runs": 60}],
        "accuracy": {ref: {"ap": {"easy": 0.9, "medium": 0.8, "hard": 0.7}, "detections": 10}, ort: {"ap": NOT_AVAILABLE}},
        "stream": {"runs": [{"label": "s", "frames": 1000, "warmup_frames": 100, "rss_after_warmup_mb": 100.0,
                             "rss_end_mb": 106.0, "growth_percent": 6.0}]},
    }


def test_ratios_verdicts_and_reports(tmp_path):
    results = synthetic_results()
    add_ratios(results)
    assert [r["ratio"] for r in results["latency"]] == [1.0, 0.8, 2.0]
    text = markdown(results)
    assert "32.0 ms vs reference 40.0 ms = ×0.80 (target ≤ ×0.85): **met**" in text
    assert "80.0 ms vs reference 40.0 ms = ×2.00 (target ≤ ×1.5): **MISSED by 33.3%**" in text
    assert "50.0 ms vs 40.0 ms = ×1.25: **met**" in text  # the paired ratio
    assert "= +6.00% (target ≤ 5%): **MISSED**" in text
    assert "| `reference/scrfd_500m_kps` | 0.9000 | 0.8000 | 0.7000 | 10 |" in text
    assert NOT_AVAILABLE in text
    write_reports(results, tmp_path)
    assert json.loads((tmp_path / "benchmark.json").read_text())["latency"][2]["ratio"] == 2.0
    assert (tmp_path / "speed_vs_accuracy.png").stat().st_size > 10_000


def test_blocks_combine_to_the_median_of_block_medians():
    block = {"warmup": 3, "faces": 6, "load_s": 1.0, "peak_rss_mb": 100.0}
    results = [
        {**block, "median_ms": 30.0, "times_ms": [29.0, 30.0, 31.0]},
        {**block, "median_ms": 60.0, "times_ms": [59.0, 60.0, 61.0], "peak_rss_mb": 120.0},  # a disturbed block
        {**block, "median_ms": 31.0, "times_ms": [30.0, 31.0, 32.0]},
    ]
    row = combine_blocks(results)
    assert row["median_ms"] == 31.0 and row["block_medians_ms"] == [30.0, 60.0, 31.0]
    assert row["runs"] == 9 and row["min_ms"] == 29.0 and row["peak_rss_mb"] == 120.0
    assert combine_blocks([*results, {"error": "exit 1: boom"}]) == {"error": "exit 1: boom"}


def test_ap_column_without_or_with_the_evaluator(tmp_path):
    try:
        import facescope.eval  # noqa: F401
    except ImportError:
        assert mini_benchmark_ap(tmp_path, tmp_path) == NOT_AVAILABLE
    else:
        assert mini_benchmark_ap(tmp_path, tmp_path / "missing").startswith("n/a (no ground truth")


@pytest.mark.shared
def test_worker_measures_the_reference_pipeline_in_a_fresh_process(shared_data):
    spec = PipelineSpec("reference/scrfd_500m_kps", "reference", str(shared_data / "weights/scrfd/scrfd_500m_kps.onnx"), "scrfd_500m_kps")
    command = [sys.executable, str(REPO / "benchmarks/worker.py"), "latency", "--spec", json.dumps(spec.to_dict()), "--threads", "1",
               "--size", "320x240", "--image", str(shared_data / "images/crowd/t1.jpg"), "--runs", "2", "--warmup", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runs"] == 2 and result["median_ms"] > 0 and result["p90_ms"] >= result["min_ms"]
    assert result["faces"] >= 1 and 20 < result["peak_rss_mb"] < 2000
