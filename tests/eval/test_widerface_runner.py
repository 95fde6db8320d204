"""Running a detector over a WIDER-layout folder: resumable files, mini-benchmark mode, sharding."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facescope.errors import DataError
from facescope.eval.widerface_io import WiderGroundTruth, WiderImage, read_prediction_file
from facescope.eval.widerface_runner import (
    detections_to_xywh,
    evaluate_detector_on_widerface,
    find_wider_images,
    predict_widerface,
)
from facescope.structures import Detections

# three images; each image's identity is its width (the fake detector recognises it by that)
FACES = {
    "0--Parade/a": [[10, 10, 20, 20], [50, 10, 20, 20]],
    "0--Parade/b": [[5, 5, 30, 30]],
    "1--Handshaking/c": [[0, 0, 15, 15]],
}
WIDTHS = {"0--Parade/a": 101, "0--Parade/b": 102, "1--Handshaking/c": 103}


def make_gt() -> WiderGroundTruth:
    images = [WiderImage(*key.split("/"), np.array(boxes, dtype=np.float64)) for key, boxes in FACES.items()]
    keep = {s: [np.arange(len(b)) for b in FACES.values()] for s in ("easy", "medium", "hard")}
    return WiderGroundTruth(images, keep, "test")


def write_images(root: Path, keys: list[str]) -> None:
    for key in keys:
        path = root / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.zeros((60, WIDTHS[key], 3), np.uint8))


class PerfectDetector:
    """Returns each image's ground-truth faces (x1y1x2y2) plus one false positive at low score."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray, *, color_order: str | None = None) -> Detections:
        self.calls += 1
        key = next(k for k, w in WIDTHS.items() if w == image.shape[1])
        boxes = [[x, y, x + w, y + h] for x, y, w, h in FACES[key]] + [[90, 40, 99, 50]]
        scores = [0.9 - 0.1 * i for i in range(len(boxes) - 1)] + [0.05]
        return Detections(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32))

    def describe(self) -> str:
        return "perfect"


def test_detections_to_xywh() -> None:
    boxes, scores = detections_to_xywh(Detections(torch.tensor([[10.0, 20.0, 15.5, 30.0]]), torch.tensor([0.5])))
    np.testing.assert_array_equal(boxes, [[10, 20, 5.5, 10]])
    np.testing.assert_array_equal(scores, [0.5])


def test_full_run_writes_official_files_and_scores_perfectly(tmp_path: Path) -> None:
    write_images(tmp_path / "images", list(FACES))
    detector = PerfectDetector()
    result = evaluate_detector_on_widerface(detector, tmp_path / "images", make_gt(), tmp_path / "out", progress=False)
    assert result.mode == "full" and result.ap == {"easy": 1.0, "medium": 1.0, "hard": 1.0}
    table = read_prediction_file(tmp_path / "out/predictions/0--Parade/a.txt")
    np.testing.assert_allclose(table, [[10, 10, 20, 20, 0.9], [50, 10, 20, 20, 0.8], [90, 40, 9, 10, 0.05]], rtol=1e-7)
    assert (tmp_path / "out/predictions/0--Parade/a.txt").read_text().startswith("a\n3\n")
    assert json.loads((tmp_path / "out/run.json").read_text())["detector"] == "perfect"
    for name in ("results.txt", "results.json", "pr_easy.png", "pr_medium.png", "pr_hard.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_resume_keeps_existing_files(tmp_path: Path) -> None:
    write_images(tmp_path / "images", list(FACES))
    kept = tmp_path / "out/predictions/0--Parade/b.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("b\n1\n500 500 10 10 0.99\n")  # a previous (wrong) answer that must be kept
    detector = PerfectDetector()
    result = evaluate_detector_on_widerface(detector, tmp_path / "images", make_gt(), tmp_path / "out", progress=False)
    assert detector.calls == 2
    assert kept.read_text() == "b\n1\n500 500 10 10 0.99\n"
    assert result.ap["hard"] < 1.0  # the kept file misses face b
    again = PerfectDetector()
    evaluate_detector_on_widerface(again, tmp_path / "images", make_gt(), tmp_path / "out", progress=False, overwrite=True)
    assert again.calls == 3 and kept.read_text().startswith("b\n2\n")


def test_refuses_to_mix_predictions_of_another_detector(tmp_path: Path) -> None:
    write_images(tmp_path / "images", list(FACES))
    evaluate_detector_on_widerface(PerfectDetector(), tmp_path / "images", make_gt(), tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="holds predictions of another detector \\('perfect'; now 'other'\\)"):
        evaluate_detector_on_widerface(
            PerfectDetector(), tmp_path / "images", make_gt(), tmp_path / "out", progress=False, detector_id="other"
        )


def test_partial_image_folder_is_a_mini_benchmark(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_images(tmp_path / "images", ["0--Parade/a", "1--Handshaking/c"])
    (tmp_path / "images/0--Parade/notes.txt").write_text("not an image")
    cv2.imwrite(str(tmp_path / "images/0--Parade/stranger.jpg"), np.zeros((5, 5, 3), np.uint8))
    result = evaluate_detector_on_widerface(PerfectDetector(), tmp_path / "images", make_gt(), None, progress=False)
    assert result.mode == "mini-benchmark" and result.partial
    assert (result.num_images, result.split_size, result.num_faces["hard"]) == (2, 3, 3)
    assert result.image_keys == ["0--Parade/a", "1--Handshaking/c"]
    assert result.ap["hard"] == 1.0  # the absent image's face does not count as a miss
    assert "MINI-BENCHMARK: only 2 of the 3" in caplog.text
    assert "1 image(s) under" in caplog.text  # stranger.jpg is not in the ground truth


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image folder not found"):
        find_wider_images(tmp_path / "nope", make_gt())
    (tmp_path / "flat").mkdir()
    cv2.imwrite(str(tmp_path / "flat/a.jpg"), np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(DataError, match="no image of the ground truth.*<event>/<name>.jpg"):
        find_wider_images(tmp_path / "flat", make_gt())


def test_shards_are_disjoint_and_cover_all(tmp_path: Path) -> None:
    write_images(tmp_path / "images", list(FACES))
    images, _ = find_wider_images(tmp_path / "images", make_gt())
    runs = [predict_widerface(PerfectDetector(), images, tmp_path / "p", progress=False, rank=r, world_size=2) for r in (0, 1)]
    assert [r.num_images for r in runs] == [2, 1]
    assert sorted(p.relative_to(tmp_path / "p").as_posix() for p in (tmp_path / "p").rglob("*.txt")) == [
        "0--Parade/a.txt",
        "0--Parade/b.txt",
        "1--Handshaking/c.txt",
    ]


def _distributed_worker(rank: int, world: int, port: int, root: str, queue) -> None:  # noqa: ANN001
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    detector = PerfectDetector()
    result = evaluate_detector_on_widerface(detector, Path(root) / "images", make_gt(), Path(root) / "out", progress=False)
    queue.put((rank, detector.calls, result.ap["hard"], result.mode))


@pytest.mark.slow
def test_two_process_run_shards_and_evaluates_on_rank0(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    write_images(tmp_path / "images", list(FACES))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    mp.start_processes(_distributed_worker, args=(2, port, str(tmp_path), queue), nprocs=2, start_method="spawn")
    reports = sorted(queue.get(timeout=60) for _ in range(2))
    assert [r[1] for r in reports] == [2, 1]  # rank 0 detected 2 images, rank 1 one
    assert all(r[2] == 1.0 and r[3] == "full" for r in reports)  # both ranks receive rank 0's result
    assert len(list((tmp_path / "out/predictions").rglob("*.txt"))) == 3
