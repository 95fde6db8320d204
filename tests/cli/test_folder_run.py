"""Folder runs of `facescope detect`: never write into the source, never read their own outputs,
lose nothing on Ctrl-C, and continue where they stopped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from facescope.cli import main

pytestmark = pytest.mark.shared


def _photos(folder: Path, source: Path, count: int, width: int = 480) -> list[Path]:
    """``count`` copies of ``source``, scaled to ``width`` (small: fast runs)."""
    image = cv2.imread(str(source))
    image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])))
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"p{i:03d}.jpg" for i in range(count)]
    for path in paths:
        cv2.imwrite(str(path), image)
    return paths


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_output_folder_equal_to_the_source_is_refused(tmp_path, shared_data, capsys):
    photos = tmp_path / "photos"
    _photos(photos, shared_data / "images/crowd/t1.jpg", 2)
    before = _digest(photos)
    assert main(["detect", str(photos), "--out", str(photos), "--quiet"]) == 2
    assert "is the source folder: its images would be overwritten" in capsys.readouterr().err
    assert main(["detect", str(photos), "--crops", str(photos / "."), "--quiet"]) == 2
    assert _digest(photos) == before  # not one byte written


def test_outputs_inside_the_source_are_never_read_back(tmp_path, shared_data, capsys):
    photos = tmp_path / "photos"
    _photos(photos, shared_data / "images/crowd/t1.jpg", 2)
    args = ["detect", str(photos), "--out", str(photos / "ann"), "--crops", str(photos / "crops"), "--json", str(tmp_path / "a.json")]
    assert main([*args, "--quiet"]) == 0
    assert main([*args, "--quiet"]) == 0  # the same run again: nothing new, no ann/ann
    assert not (photos / "ann" / "ann").exists() and not (photos / "ann" / "crops").exists()
    assert sorted(p.name for p in (photos / "ann").glob("*.jpg")) == ["p000.jpg", "p001.jpg"]
    # another output folder later: the first run's outputs (marked) are still not inputs
    assert main(["detect", str(photos), "--out", str(photos / "ann2"), "--json", str(tmp_path / "b.json"), "--quiet"]) == 0
    images = [r["image"] for r in json.loads((tmp_path / "b.json").read_text())["images"]]
    assert images == ["p000.jpg", "p001.jpg"]
    capsys.readouterr()
    assert main(["detect", str(photos / "ann"), "--quiet"]) == 2  # an output folder as the source: said, not guessed
    assert "holds the output of an earlier facescope run" in capsys.readouterr().err


def test_a_rerun_with_other_settings_is_refused_unless_overwrite(tmp_path, shared_data, capsys):
    photos = tmp_path / "photos"
    _photos(photos, shared_data / "images/crowd/t1.jpg", 1)
    faces = tmp_path / "faces.json"
    assert main(["detect", str(photos), "--json", str(faces), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["detect", str(photos), "--json", str(faces), "--score-thresh", "0.9", "--quiet"]) == 2
    assert "pass --overwrite to start over" in capsys.readouterr().err
    assert main(["detect", str(photos), "--json", str(faces), "--score-thresh", "0.9", "--overwrite", "--quiet"]) == 0
    assert "score >= 0.9" in json.loads(faces.read_text())["detector"]


def test_sigint_keeps_every_finished_image_and_a_rerun_completes_it(tmp_path, shared_data):
    COUNT = 240  # enough that the run is still going when the first save (after ~1 s) is seen, at ~70 images/s
    photos, ann, crops, faces = tmp_path / "photos", tmp_path / "ann", tmp_path / "crops", tmp_path / "faces.json"
    _photos(photos, shared_data / "images/crowd/t1.jpg", COUNT)
    command = [sys.executable, "-m", "facescope", "detect", str(photos), "--out", str(ann), "--crops", str(crops), "--json", str(faces)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(faces.read_text())["images"]) >= 2:
                break
        except (OSError, ValueError):  # not written yet (a partial file would be a failure: see below)
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "the same command continues where it stopped" in stderr and "Traceback" not in stderr
    interrupted = json.loads(faces.read_text())  # valid JSON
    finished = [r["image"] for r in interrupted["images"]]
    assert interrupted["complete"] is False and 2 <= len(finished) < COUNT
    assert all(len(r["faces"]) == 6 for r in interrupted["images"])  # t1.jpg's 6 faces
    assert all((ann / name).is_file() and (crops / f"{Path(name).stem}_5.png").is_file() for name in finished)

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"continuing: {len(finished)} of {COUNT} images were finished by an earlier run" in rerun.stderr
    complete = json.loads(faces.read_text())
    assert complete["complete"] is True and [r["image"] for r in complete["images"]] == [f"p{i:03d}.jpg" for i in range(COUNT)]
    assert complete["images"][: len(finished)] == interrupted["images"]  # kept as they were (images run in path order)
    assert len(list(ann.glob("*.jpg"))) == COUNT and len(list(crops.glob("*.png"))) == COUNT * 6
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary file left behind
