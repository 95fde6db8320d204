"""What SOURCE names (folders, path lists, globs) and the Parquet result rows; no Ray instance."""

import os

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the ray extra is not installed")

from facescope.errors import FacescopeError
from facescope.scale.records import DetectorIdentity, ShardWriter, finished_paths, read_results, result_table, row_detections
from facescope.scale.sources import list_source
from facescope.structures import Detections

IDENTITY = DetectorIdentity("scrfd_500m_kps", "/w/scrfd_500m_kps.onnx", "default", "scrfd_500m_kps [onnxruntime] score >= 0.5")


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_list_file_and_glob(tmp_path):
    a, b, c = _touch(tmp_path / "imgs/a.jpg"), _touch(tmp_path / "imgs/sub/b.png"), _touch(tmp_path / "imgs/notes.txt")
    os.symlink(a, tmp_path / "imgs/link.jpg")  # a second name for a: a second image
    assert list_source(tmp_path / "imgs") == [str(a), str(tmp_path / "imgs/link.jpg"), str(b)]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# the collection\nimgs/a.jpg\n\n{b}\nimgs/a.jpg\nimgs/missing.jpg\n")
    # relative to the list's folder, duplicates once, a missing file kept (it becomes an error row)
    assert list_source(listing) == [str(a), str(b), str(tmp_path / "imgs/missing.jpg")]
    assert list_source(str(tmp_path / "imgs/**/*.png")) == [str(b)]
    assert list_source(a) == [str(a)]
    with pytest.raises(FacescopeError, match="no such file, folder or glob match"):
        list_source(tmp_path / "nothing")
    with pytest.raises(FacescopeError, match="names no images"):
        list_source(str(tmp_path / "*.gif"))
    assert c.exists()


def test_rows_round_trip_exactly_through_parquet(tmp_path):
    found = Detections(
        np.array([[1.25, 2.5, 30.125, 40.0625], [5, 6, 7, 8]], np.float32) + np.float32(1e-4),
        np.array([0.9, 0.51], np.float32),
        np.arange(20, dtype=np.float32).reshape(2, 5, 2) / 3,
    )
    table = result_table(["/x/a.jpg", "/x/b.jpg"], [(640, 480), None], [found, None], [None, "cannot read image /x/b.jpg"], IDENTITY)
    writer = ShardWriter(tmp_path / "out")
    shard = writer.write([table])
    assert shard.name.startswith("part-") and not list((tmp_path / "out").glob(".*"))  # no temporary file left
    rows = read_results(tmp_path / "out").to_pylist()
    good, bad = rows
    back = row_detections(good)
    assert (good["width"], good["height"], good["model"], good["preset"], good["error"]) == (640, 480, "scrfd_500m_kps", "default", None)
    assert np.array_equal(back.boxes, found.boxes) and np.array_equal(back.landmarks, found.landmarks)
    assert np.array_equal(back.scores, found.scores)
    assert bad["error"] == "cannot read image /x/b.jpg" and len(row_detections(bad)) == 0 and bad["width"] is None
    assert finished_paths(tmp_path / "out", IDENTITY.settings) == {"/x/a.jpg", "/x/b.jpg"}
    with pytest.raises(FacescopeError, match="holds results of another detector"):
        finished_paths(tmp_path / "out", "scrfd_2.5g_kps [onnxruntime] score >= 0.5")


def test_a_model_without_landmarks_has_null_landmarks(tmp_path):
    found = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.7], np.float32), None)
    row = result_table(["/x/a.jpg"], [(10, 10)], [found], [None], IDENTITY).to_pylist()[0]
    assert row["landmarks"] is None and row_detections(row).landmarks is None
