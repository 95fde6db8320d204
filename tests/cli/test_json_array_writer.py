"""The folder mode of `facescope detect` streams its JSON: complete files only, nothing kept in memory."""

import json

import pytest

from facescope.cli.detect import _JsonArrayWriter


def test_writes_valid_json_item_by_item(tmp_path):
    path = tmp_path / "sub" / "faces.json"
    with _JsonArrayWriter(path, {"root": "photos", "model": "m"}, "images") as writer:
        assert not path.exists()  # only the temporary file exists while writing
        for i in range(3):
            writer.append({"image": f"{i}.jpg", "faces": [{"score": 0.5 * i}]})
    data = json.loads(path.read_text())
    assert data == {"root": "photos", "model": "m", "images": [{"image": f"{i}.jpg", "faces": [{"score": 0.5 * i}]} for i in range(3)]}
    assert [p.name for p in path.parent.iterdir()] == ["faces.json"]


def test_empty_and_interrupted_runs(tmp_path):
    path = tmp_path / "empty.json"
    with _JsonArrayWriter(path, {"root": "r"}, "images"):
        pass
    assert json.loads(path.read_text()) == {"root": "r", "images": []}
    broken = tmp_path / "broken.json"
    with pytest.raises(KeyboardInterrupt), _JsonArrayWriter(broken, {"root": "r"}, "images") as writer:
        writer.append({"image": "a.jpg"})
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.json"]  # no partial file, no temp file
    with _JsonArrayWriter(None, {}, "images") as writer:  # no --json: items are dropped
        writer.append({"image": "a.jpg"})
