"""A collection job killed midway and run again: every image appears exactly once in the output, and none
that had been written is computed again. Slow (two Ray start-ups and ~100 images)."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from facescope.scale.ray_data import ClusterOptions, run_collection  # noqa: E402
from facescope.scale.records import read_results, shard_paths  # noqa: E402

pytestmark = [pytest.mark.shared, pytest.mark.slow]

JOB = """
import sys
from facescope.scale.ray_data import ClusterOptions, run_collection
run_collection(sys.argv[1], sys.argv[2], ClusterOptions(actors=1, batch_size=4), shard_rows=8, shard_seconds=1e9,
               model="scrfd_500m_kps", weights=sys.argv[3], threads=1)
"""


def _wait_for_shards(out, count, process, timeout_s=180.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if out.exists() and len(shard_paths(out)) >= count:
            return
        assert process.poll() is None, "the job ended before it was killed"
        time.sleep(0.2)
    pytest.fail(f"no {count} shards after {timeout_s} s")


def test_killed_job_resumes_without_losing_or_repeating_an_image(local_ray, wider_val_images, scrfd_onnx, tmp_path):
    folder = tmp_path / "collection"
    folder.mkdir()
    for i in range(96):  # 96 names for the 38 real images
        os.symlink(wider_val_images[i % len(wider_val_images)], folder / f"img_{i:03d}.jpg")
    out, weights = tmp_path / "faces", str(scrfd_onnx["scrfd_500m_kps"])
    # its own session: the kill takes the job's local Ray processes down with it, like a crash of the machine
    job = subprocess.Popen([sys.executable, "-c", JOB, str(folder), str(out), weights], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_shards(out, 2, job)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    first = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in shard_paths(out)}
    written = read_results(out).column("path").to_pylist()
    assert 16 <= len(written) < 96 and len(set(written)) == len(written)

    summary = run_collection(folder, out, ClusterOptions(actors=1, batch_size=4), shard_rows=8,
                             model="scrfd_500m_kps", weights=weights, threads=1)  # fmt: skip
    assert summary.skipped == len(written) and summary.processed == 96 - len(written)  # nothing written is redone
    paths = read_results(out).column("path").to_pylist()
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir())  # every image exactly once
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first} == first  # the first run's shards untouched
