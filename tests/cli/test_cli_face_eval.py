"""``facescope eval afw`` / ``facescope eval pascal`` on constructed annotation files (the published
face-eval .mat layout) with hand-computed AP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facescope.cli import main

scipy_io = pytest.importorskip("scipy.io")


def _write_annotations(path, images: dict[str, list[list[float]]]) -> None:
    """face-eval layout: struct array Annotations(imgname, objects)."""
    table = np.zeros((len(images),), dtype=[("imgname", object), ("objects", object)])
    for i, (name, rows) in enumerate(images.items()):
        table[i]["imgname"] = name
        table[i]["objects"] = np.asarray(rows, dtype=np.float64)
    scipy_io.savemat(str(path), {"Annotations": table})


def _write_detections(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_eval_afw_reads_ignore_flags_and_min_size(tmp_path, capsys):
    annotations = tmp_path / "new_annotations_AFW.mat"
    _write_annotations(annotations, {
        "a.jpg": [[0, 0, 49, 49, 0, 0], [100, 0, 119, 19, 0, 0], [200, 0, 249, 49, 0, 1]],  # 20 px face; flagged face
        "b.jpg": [[0, 0, 59, 59, 0, 0]],  # never detected
    })  # fmt: skip
    detections = tmp_path / "dets.txt"
    _write_detections(detections, [
        "a 0.9 0 0 49 49",  # TP
        "a 0.8 98 0 121 23",  # on the ignored 20 px face: neither
        "a 0.7 1 0 50 49",  # duplicate: FP
        "a 0.6 200 0 249 49",  # on the flagged face: neither
        "a 0.95 300 300 310 310",  # 11 px: dropped
        "a 0.5 400 400 449 449",  # FP
    ])  # fmt: skip
    out = tmp_path / "afw"
    code = main(["eval", "afw", "--annotations", str(annotations), "--detections", str(detections),
                 "--calibration-rounds", "1", "--out", str(out)])  # fmt: skip
    assert code == 0
    # kept in score order: TP, FP, FP over 2 faces -> precision 1, 1/2, 1/3 at recall 1/2: AP = 1/2
    result = json.loads((out / "results.json").read_text())
    assert result["num_faces"] == 2 and result["ap"] == pytest.approx(0.5, abs=1e-12)
    assert "AP 0.500000" in capsys.readouterr().out


def test_eval_pascal_four_column_objects_with_calibration(tmp_path, capsys):
    annotations = tmp_path / "Annotations_Face_PASCALLayout_large_fixed.mat"
    _write_annotations(annotations, {"p1.jpg": [[10, 10, 59, 59], [100, 100, 139, 139]], "p2.jpg": [[0, 0, 39, 39]]})
    detections = tmp_path / "dets.txt"
    _write_detections(detections, ["p1 0.9 10 10 59 59", "p1 0.8 300 300 360 360", "p1 0.6 100 100 139 139"])
    assert main(["eval", "pascal", "--annotations", str(annotations), "--detections", str(detections)]) == 0
    # TP, FP, TP over 3 faces: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3 -> AP 1/3 + 1/3 * 2/3 = 5/9;
    # exact boxes make every calibration round the identity, so the default 5 rounds change nothing
    assert "AP 0.555556 (VOC all-point)" in capsys.readouterr().out


def test_eval_afw_refuses_unknown_image_ids_and_bad_layouts(tmp_path, capsys):
    annotations = tmp_path / "gt.mat"
    _write_annotations(annotations, {"a.jpg": [[0, 0, 49, 49]]})
    detections = tmp_path / "dets.txt"
    _write_detections(detections, ["zzz 0.9 0 0 49 49"])
    assert main(["eval", "afw", "--annotations", str(annotations), "--detections", str(detections)]) == 2
    assert "1 detected image ids are not in" in capsys.readouterr().err
    scipy_io.savemat(str(tmp_path / "other.mat"), {"boxes": np.zeros((2, 4))})
    assert main(["eval", "afw", "--annotations", str(tmp_path / "other.mat"), "--detections", str(detections)]) == 2
    assert "no 'Annotations' struct array" in capsys.readouterr().err
