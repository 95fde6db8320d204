"""WIDER FACE file formats: reading, writing, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facescope.errors import DataError
from facescope.eval.widerface_io import (
    WiderGroundTruth,
    WiderImage,
    parse_prediction_text,
    read_prediction_file,
    read_prediction_folder,
    read_retinaface_labels,
    read_wider_mat,
    read_wider_txt,
    write_prediction_folder,
    write_retinaface_labels,
    write_wider_txt,
)


def test_prediction_text_official_layout() -> None:
    text = "0_Parade_marchingband_1_465\n2\n10 20 30 40 0.9\n1.5 2.5 3 4 0.25 99\n"
    table = parse_prediction_text(text)
    np.testing.assert_array_equal(table, [[10, 20, 30, 40, 0.9], [1.5, 2.5, 3, 4, 0.25]])  # extra column ignored
    assert parse_prediction_text("name\r\n1\r\n1 2 3 4 0.5\r\n\r\n").shape == (1, 5)  # CRLF, trailing blank
    assert parse_prediction_text("").shape == (0, 5)  # empty file: no detections
    assert parse_prediction_text("name\n0\n").shape == (0, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("img\n3\n1 2 3 4 0.5\n", r"f\.txt:2: the count says 3 boxes but 1 box lines follow"),
        ("img\nthree\n", r"f\.txt:2: expected the number of boxes: 'three'"),
        ("img\n2\n1 2 3 4 0.5\n1 2 x 4 0.5\n", r"f\.txt:4: not a list of numbers: '1 2 x 4 0.5'"),
        ("img\n1\n1 2 3 4\n", r"f\.txt:3: expected 'x y w h score', found 4 numbers: '1 2 3 4'"),
        ("img\n1\n1 2 3 4 nan\n", r"f\.txt:3: non-finite value: '1 2 3 4 nan'"),
    ],
)
def test_prediction_text_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_prediction_text(text, "f.txt")


def test_prediction_folder_round_trip_is_exact_for_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.random((7, 5)).astype(np.float32) * np.array([1000, 1000, 300, 300, 1], dtype=np.float32)
    write_prediction_folder(tmp_path, {"0--Parade/a": values.astype(np.float64), "1--Handshaking/b": np.zeros((0, 5))})
    assert (tmp_path / "0--Parade/a.txt").read_text().splitlines()[:2] == ["a", "7"]
    read, missing = read_prediction_folder(tmp_path, ["0--Parade/a", "1--Handshaking/b", "2--Demonstration/c"])
    assert missing == ["2--Demonstration/c"]
    np.testing.assert_array_equal(read["0--Parade/a"].astype(np.float32), values)
    assert read["1--Handshaking/b"].shape == (0, 5)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    with pytest.raises(DataError, match="prediction file not found"):
        read_prediction_file(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="prediction folder not found"):
        read_prediction_folder(tmp_path / "nope", [])


def test_bbx_gt_txt_reading_and_writing(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(
        "0--Parade/0_Parade_a.jpg\n2\n"
        "449 330 122 149 0 0 0 0 0 0 \n"
        "10 20 5 6 2 1 0 0 1 2 \n"
        "1--Handshaking/1_b.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n"
        "2--Demonstration/2_c.jpg\n1\n1 1 1 1 0 0 0 1 0 0\n"
    )
    gt = read_wider_txt(path)
    assert gt.keys == ["0--Parade/0_Parade_a", "1--Handshaking/1_b", "2--Demonstration/2_c"]
    np.testing.assert_array_equal(gt.images[0].boxes, [[449, 330, 122, 149], [10, 20, 5, 6]])
    np.testing.assert_array_equal(gt.images[0].attributes[1], [2, 1, 0, 0, 1, 2])
    assert gt.images[1].boxes.shape == (0, 4) and gt.keep == {}
    write_wider_txt(gt, tmp_path / "out.txt")
    again = read_wider_txt(tmp_path / "out.txt")
    assert again.keys == gt.keys
    for a, b in zip(gt.images, again.images):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.attributes, b.attributes)


def test_bbx_gt_txt_errors(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    path.write_text("0--Parade/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n1 2 3 4 0 0\n")
    with pytest.raises(DataError, match=r"gt\.txt:4: expected 10 numbers, found 6: '1 2 3 4 0 0'"):
        read_wider_txt(path)
    path.write_text("0--Parade/a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n")
    with pytest.raises(DataError, match=r"gt\.txt:4: unexpected end of file, expected face 2 of 2"):
        read_wider_txt(path)
    path.write_text("0--Parade/a.jpg\n-1\n")
    with pytest.raises(DataError, match=r"gt\.txt:2: negative face count: '-1'"):
        read_wider_txt(path)


def test_retinaface_label_file(tmp_path: Path) -> None:
    path = tmp_path / "label.txt"
    path.write_text(
        "# 0--Parade/a.jpg\n"
        "10 20 30 40 15.0 25.0 0.0 30.0 25.0 1.0 22.0 30.0 0.0 -1.0 -1.0 -1.0 28.0 40.0 0.0 0.82\n"
        "5 5 10 10 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0\n"
        "# 1--Handshaking/b.jpg\n"
        "1 2 3 4\n"
        "# 2--Demonstration/empty.jpg\n"
    )
    images = read_retinaface_labels(path)
    assert [i.path for i in images] == ["0--Parade/a.jpg", "1--Handshaking/b.jpg", "2--Demonstration/empty.jpg"]
    first = images[0]
    np.testing.assert_array_equal(first.boxes, [[10, 20, 40, 60], [5, 5, 15, 15]])  # xywh -> xyxy
    np.testing.assert_array_equal(first.landmark_valid, [[True, True, True, False, True], [False] * 5])
    np.testing.assert_array_equal(first.landmarks[0, 3], [0, 0])  # missing point stored as 0
    np.testing.assert_array_equal(first.landmarks[0, 4], [28, 40])
    assert images[1].landmark_valid.shape == (1, 5) and not images[1].landmark_valid.any()
    assert images[2].boxes.shape == (0, 4)
    targets = first.to_face_targets()
    assert targets.boxes.shape == (2, 4) and targets.landmark_valid.dtype.is_floating_point is False
    write_retinaface_labels(images, tmp_path / "again.txt")
    again = read_retinaface_labels(tmp_path / "again.txt")
    for a, b in zip(images, again):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.landmark_valid, b.landmark_valid)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_labelv2_header_means_xyxy(tmp_path: Path) -> None:
    path = tmp_path / "labelv2.txt"
    path.write_text("# train/a.jpg 640 480\n10 20 30 40\n")
    (image,) = read_retinaface_labels(path)
    assert image.size == (640, 480)
    np.testing.assert_array_equal(image.boxes, [[10, 20, 30, 40]])
    np.testing.assert_array_equal(read_retinaface_labels(path, box_format="xywh")[0].boxes, [[10, 20, 40, 60]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10 20 30 40\n", r"label\.txt:1: expected a '# <image path>' header line: '10 20 30 40'"),
        ("# a.jpg\n1 2 3 4 5 6\n", r"label\.txt:2: expected 4 or 19 or 20 numbers, found 6: '1 2 3 4 5 6'"),
        ("# a.jpg\n1 2 3 four\n", r"label\.txt:2: not a list of numbers: '1 2 3 four'"),
        ("# a.jpg 640\n", r"label\.txt:1: expected '# <path>' or '# <path> <width> <height>'"),
    ],
)
def test_label_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "label.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_retinaface_labels(path)


def _write_official_mat(path: Path, keep_1based: list[list[int]] | None = None) -> None:
    """A two-event ground-truth file in the official cell layout (event_list, file_list, ...)."""
    import scipy.io

    events = np.empty((2, 1), dtype=object)
    files = np.empty((2, 1), dtype=object)
    boxes = np.empty((2, 1), dtype=object)
    events[0, 0], events[1, 0] = "0--Parade", "1--Handshaking"
    names = [["a", "b"], ["c"]]
    faces = [[np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]]), np.zeros((0, 4))], [np.array([[0, 0, 10, 10]])]]
    keep_cells = np.empty((2, 1), dtype=object)
    flat_keep = iter(keep_1based or [])
    for e in range(2):
        files[e, 0] = np.empty((len(names[e]), 1), dtype=object)
        boxes[e, 0] = np.empty((len(names[e]), 1), dtype=object)
        keep_cells[e, 0] = np.empty((len(names[e]), 1), dtype=object)
        for j, name in enumerate(names[e]):
            files[e, 0][j, 0] = name
            boxes[e, 0][j, 0] = faces[e][j].astype(np.int32)
            keep_cells[e, 0][j, 0] = np.array(next(flat_keep, []), dtype=np.uint16).reshape(-1, 1)
    payload = {"event_list": events, "file_list": files, "face_bbx_list": boxes}
    if keep_1based is not None:
        payload["gt_list"] = keep_cells
    scipy.io.savemat(str(path), payload)


def test_mat_ground_truth_keep_lists_are_one_based(tmp_path: Path) -> None:
    _write_official_mat(tmp_path / "wider_face_val.mat")
    _write_official_mat(tmp_path / "wider_hard_val.mat", [[1, 3], [], [1]])
    gt = read_wider_mat(tmp_path, with_attributes=False)
    assert gt.keys == ["0--Parade/a", "0--Parade/b", "1--Handshaking/c"]
    np.testing.assert_array_equal(gt.images[0].boxes, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]])
    assert gt.images[1].boxes.shape == (0, 4)
    assert set(gt.keep) == {"hard"}  # easy/medium files absent
    assert [k.tolist() for k in gt.keep["hard"]] == [[0, 2], [], [0]]  # 1-based in the file, 0-based here
    small = gt.restrict_to(["1--Handshaking/c"])
    assert small.keys == ["1--Handshaking/c"] and small.split_size == 3 and small.is_restricted
    assert [k.tolist() for k in small.keep["hard"]] == [[0]]
    with pytest.raises(DataError, match="not in the ground truth"):
        gt.restrict_to(["9--Nope/x"])


@pytest.mark.parametrize("bad", [[[0], [], []], [[4], [], []]])
def test_mat_keep_index_out_of_range(tmp_path: Path, bad: list[list[int]]) -> None:
    _write_official_mat(tmp_path / "wider_face_val.mat")
    _write_official_mat(tmp_path / "wider_easy_val.mat", bad)
    with pytest.raises(DataError, match=r"wider_easy_val\.mat: image 0--Parade/a: keep index \d outside 1\.\.3"):
        read_wider_mat(tmp_path, with_attributes=False)


def test_mat_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ground-truth file not found"):
        read_wider_mat(tmp_path)
    (tmp_path / "wider_face_val.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="not a readable MATLAB file"):
        read_wider_mat(tmp_path)


@pytest.mark.shared
def test_official_ground_truth_files_agree(shared_data: Path) -> None:
    gt = read_wider_mat(shared_data / "widerface/ground_truth")
    assert len(gt) == 3226 and gt.num_faces == 39708
    assert {s: int(sum(len(k) for k in gt.keep[s])) for s in gt.keep} == {"easy": 7211, "medium": 13319, "hard": 31958}
    text = read_wider_txt(shared_data / "widerface/wider_face_val_bbx_gt.txt")
    assert sorted(text.keys) == sorted(gt.keys)
    by_key = {image.key: image for image in text.images}
    for image in gt.images:
        np.testing.assert_array_equal(by_key[image.key].boxes, image.boxes)
        np.testing.assert_array_equal(by_key[image.key].attributes, image.attributes)
    labels = read_retinaface_labels(shared_data / "widerface/retinaface_format/val_label.txt")
    assert len(labels) == 3222
    assert labels[0].path == "0--Parade/0_Parade_marchingband_1_465.jpg" and labels[0].boxes.shape == (126, 4)


def test_ground_truth_helpers() -> None:
    gt = WiderGroundTruth([WiderImage("e", "a", np.zeros((2, 4))), WiderImage("e", "b", np.zeros((1, 4)))])
    assert gt.num_faces == 3 and not gt.is_restricted and len(gt) == 2
    assert gt.restrict_to(["e/b"]).num_faces == 1
