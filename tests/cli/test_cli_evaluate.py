"""``facescope eval``: run in-process through ``facescope.cli.main``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facescope.cli import main


@pytest.mark.shared
def test_eval_prediction_folder_prints_full_precision_aps(shared_data: Path, tmp_path: Path, capsys) -> None:
    code = main(["eval", "widerface", "--predictions", str(shared_data / "widerface/predictions/yolov7_face"),
                 "--gt", str(shared_data / "widerface/ground_truth"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "WIDER FACE val AP (full val), yolov7_face:" in out
    assert "easy   0.9324932633835993" in out
    assert "medium 0.9127942909886333" in out
    assert "hard   0.8297205022059916" in out
    assert (tmp_path / "pr_hard.png").is_file() and (tmp_path / "results.json").is_file()


@pytest.mark.shared
def test_eval_detector_on_two_images_is_a_loud_mini_benchmark(shared_data, scrfd_onnx, wider_val_images, tmp_path, capsys):
    images = tmp_path / "images"
    for path in wider_val_images[:2]:
        (images / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, images / path.parent.name / path.name)
    argv = ["eval", "widerface", "--images", str(images), "--gt", str(shared_data / "widerface/ground_truth"),
            "--out", str(tmp_path / "run"), "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]),
            "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "MINI-BENCHMARK: only 2 of the 3226 WIDER FACE val images" in captured.err
    assert "preset 'widerface'" in captured.err  # the protocol preset is the default here
    assert "WIDER FACE val AP (MINI-BENCHMARK, 2 of 3226 images)" in captured.out
    assert len(list((tmp_path / "run/predictions").rglob("*.txt"))) == 2
    assert (tmp_path / "run/pr_easy.png").is_file()
    first = captured.out
    assert main(argv) == 0  # resumed: the files are kept, the numbers are the same
    assert capsys.readouterr().out.split("wrote")[0] == first.split("wrote")[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gt", "g"], "pass exactly one of --images"),
        (["--gt", "g", "--images", "i", "--predictions", "p"], "pass exactly one of --images"),
        (["--gt", "g", "--images", "i"], "--out is required with --images"),
    ],
)
def test_eval_argument_errors(argv: list[str], message: str, capsys) -> None:
    assert main(["eval", "widerface", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.shared
def test_eval_reports_missing_prediction_files(shared_data: Path, tmp_path: Path, capsys) -> None:
    one = tmp_path / "preds/0--Parade"
    one.mkdir(parents=True)
    (one / "0_Parade_marchingband_1_465.txt").write_text("x\n1\n1 2 3 4 0.5\n")
    gt = str(shared_data / "widerface/ground_truth")
    assert main(["eval", "widerface", "--predictions", str(tmp_path / "preds"), "--gt", gt]) == 2
    assert "3225 of 3226 images have no predictions" in capsys.readouterr().err
    assert main(["eval", "widerface", "--predictions", str(tmp_path / "preds"), "--gt", gt, "--missing", "skip"]) == 0
    assert "MINI-BENCHMARK, 1 of 3226 images" in capsys.readouterr().out
    assert main(["eval", "widerface", "--predictions", str(tmp_path / "preds"), "--gt", gt, "--compare", "oops"]) == 2
    assert "--compare expects NAME=DIR" in capsys.readouterr().err


def test_eval_fddb_on_a_detection_file(tmp_path: Path, capsys) -> None:
    import cv2

    (tmp_path / "pics/2002/08").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "pics/2002/08/img_1.jpg"), np.zeros((80, 100, 3), np.uint8))
    (tmp_path / "ellipses.txt").write_text("2002/08/img_1\n1\n20 12 1.5707963 50 40 1\n")
    (tmp_path / "dets.txt").write_text("2002/08/img_1\n2\n38 20 24 40 0.9\n0 0 5 5 0.3\n")
    argv = ["eval", "fddb", "--ellipses", str(tmp_path / "ellipses.txt"), "--images", str(tmp_path / "pics"),
            "--detections", str(tmp_path / "dets.txt"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    assert "TPR at 1000 FP: discrete 1.000000" in capsys.readouterr().out
    assert (tmp_path / "out/DiscROC.txt").read_text().splitlines() == ["1 1 0.3", "1 0 0.9"]
    assert (tmp_path / "out/roc_discrete.png").is_file()


@pytest.mark.shared
def test_eval_landmarks_against_its_own_detections(shared_data: Path, scrfd_onnx, tmp_path: Path, capsys) -> None:
    """Labels made from the detector's own output: every face matched, NME 0."""
    from facescope.eval.widerface_io import LabeledImage, write_retinaface_labels
    from facescope.inference.detector import Detector

    image = shared_data / "images/crowd/t1.jpg"
    faces = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"]).detect(image)
    boxes, _, landmarks = faces.numpy()
    label = LabeledImage(image.name, boxes.astype(float), landmarks.astype(float), np.ones((len(boxes), 5), bool))
    write_retinaface_labels([label], tmp_path / "label.txt")
    argv = ["eval", "landmarks", "--labels", str(tmp_path / "label.txt"), "--images", str(image.parent),
            "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]), "--preset", "default",
            "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{len(boxes)} of {len(boxes)} annotated faces detected" in out and "mean NME 0.0000" in out
    assert (tmp_path / "out/ced.png").is_file()
