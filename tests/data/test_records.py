import pytest

from facescope.data.records import drop_empty, read_annotations
from facescope.errors import DataError


def test_retinaface_label_txt(tmp_path):
    label = tmp_path / "label.txt"
    label.write_text(
        "# 0--Parade/a.jpg\n"
        "10 20 30 40 15.0 25.0 0.0 30.0 25.0 0.0 22.0 32.0 0.0 17.0 40.0 0.0 28.0 40.0 0.0 0.9\n"
        "50 60 10 10 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0\n"
        "# 0--Parade/b.jpg\n"
        "1 2 3 4\n"
    )
    records = read_annotations(label, tmp_path / "images", "retinaface")
    assert [r.image_path.name for r in records] == ["a.jpg", "b.jpg"]
    a = records[0]
    assert a.boxes.tolist() == [[10, 20, 40, 60], [50, 60, 60, 70]]
    assert a.landmark_valid.tolist() == [[True] * 5, [False] * 5]
    assert a.landmarks[0, 4].tolist() == [28.0, 40.0]
    assert records[1].landmark_valid.sum() == 0


def test_scrfd_labelv2_and_wider_txt(tmp_path):
    v2 = tmp_path / "labelv2.txt"
    v2.write_text("# img/x.jpg 640 480\n1 2 11 22 3 4 1 5 6 1 7 8 0 9 10 1 11 12 1\n")
    record = read_annotations(v2, tmp_path, "scrfd")[0]
    assert record.boxes.tolist() == [[1, 2, 11, 22]] and record.landmark_valid.all()  # visibility 0 is annotated
    wider = tmp_path / "gt.txt"
    wider.write_text("0--Parade/x.jpg\n2\n10 20 5 6 0 0 0 0 0 0\n1 1 0 0 0 0 0 1 0 0\n1--Handshaking/y.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
    records = read_annotations(wider, tmp_path, "wider")
    assert records[0].boxes.tolist() == [[10, 20, 15, 26]]  # the zero-size face is dropped
    assert len(records[1].boxes) == 0 and len(drop_empty(records)) == 1


def test_jsonl_custom_format(tmp_path):
    path = tmp_path / "faces.jsonl"
    path.write_text('{"image": "a.jpg", "faces": [{"box": [1, 2, 3, 4], "landmarks": [[1, 1], null, [2, 2], [3, 3], [4, 4]]}]}\n'
                    '{"image": "b.jpg", "faces": [{"box": [5, 5, 9, 9]}]}\n')
    a, b = read_annotations(path, tmp_path, "jsonl")
    assert a.landmark_valid.tolist() == [[True, False, True, True, True]]
    assert b.landmark_valid.sum() == 0 and b.boxes.tolist() == [[5, 5, 9, 9]]


def test_malformed_lines_name_file_line_and_text(tmp_path):
    bad = tmp_path / "label.txt"
    bad.write_text("# a.jpg\n10 20 thirty 40\n")
    with pytest.raises(DataError, match=r"label.txt:2: not a list of numbers: '10 20 thirty 40'"):
        read_annotations(bad, tmp_path, "retinaface")
    orphan = tmp_path / "orphan.txt"
    orphan.write_text("1 2 3 4\n")
    with pytest.raises(DataError, match=r"orphan.txt:1: expected a '# <image path>' header line: '1 2 3 4'"):
        read_annotations(orphan, tmp_path, "scrfd")
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"image": "a.jpg"}\n')
    with pytest.raises(DataError, match=r"x.jsonl:1: KeyError"):
        read_annotations(jsonl, tmp_path, "jsonl")
    with pytest.raises(DataError, match="not found"):
        read_annotations(tmp_path / "missing.txt", tmp_path, "scrfd")
