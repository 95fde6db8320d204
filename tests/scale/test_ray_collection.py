"""Collections on a real local Ray instance: one row per image, bad files as error rows, the detections
of single-process ``facescope detect``, and a re-run that skips what is done."""

import json
import shutil
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from facescope import Detector  # noqa: E402
from facescope.cli import main  # noqa: E402
from facescope.scale.ray_data import ClusterOptions, run_collection  # noqa: E402
from facescope.scale.records import read_results, row_detections  # noqa: E402

pytestmark = pytest.mark.shared


def png_bomb_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG declaring ``width x height`` pixels (refused from its header by the pixel budget)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.fixture()
def collection(tmp_path, wider_val_images):
    """A folder of 5 WIDER images, a corrupt file and a 900-megapixel PNG header; a list naming them and a missing file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in wider_val_images[:5]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "bomb.png").write_bytes(png_bomb_header(30000, 30000))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([*(f"photos/{p.name}" for p in sorted(folder.iterdir())), "photos/missing.jpg"]) + "\n")
    return folder, listing


def test_rows_equal_single_process_detect_bad_files_are_rows_and_a_rerun_skips(local_ray, collection, scrfd_onnx, tmp_path):
    folder, listing = collection
    weights = scrfd_onnx["scrfd_500m_kps"]
    out = tmp_path / "faces"
    summary = run_collection(listing, out, ClusterOptions(actors=1, batch_size=4), model="scrfd_500m_kps", weights=weights, threads=1)
    rows = {row["path"]: row for row in read_results(out).to_pylist()}
    listed = [str(folder / name) for name in sorted(p.name for p in folder.iterdir())] + [str(folder / "missing.jpg")]
    assert sorted(rows) == sorted(listed) and summary.processed == len(listed) == 8  # one row per image
    assert "not a decodable image" in rows[str(folder / "broken.jpg")]["error"]
    assert "exceed the image pixel budget" in rows[str(folder / "bomb.png")]["error"]
    assert "no such file" in rows[str(folder / "missing.jpg")]["error"]
    assert summary.errors == 3

    single = Detector("scrfd_500m_kps", weights, threads=1)
    faces = 0
    for path in listed[:5]:
        row, expected = rows[path], single.detect(path)
        assert row["error"] is None and row["model"] == "scrfd_500m_kps" and row["weights"] == str(weights)
        got = row_detections(row)
        assert len(got) == len(expected)
        faces += len(got)
        if len(got):
            assert np.abs(got.boxes - expected.boxes).max() <= 1e-3
            assert np.abs(got.landmarks - expected.landmarks).max() <= 1e-3
    assert faces > 30 and summary.faces == faces

    # the single-process command on the same folder: the same counts, boxes equal to its JSON's 2 decimals
    js = tmp_path / "local.json"
    main(["detect", str(folder), "--model", "scrfd_500m_kps", "--weights", str(weights), "--threads", "1", "--quiet", "--json", str(js)])
    for record in json.loads(js.read_text())["images"]:
        row = rows[str(folder / record["image"])]
        assert ("error" in record) == (row["error"] is not None)
        if "error" not in record:
            assert len(record["faces"]) == len(row["boxes"])
            for face, box in zip(record["faces"], row["boxes"]):
                assert np.abs(np.subtract(face["box"], box)).max() <= 0.005 + 1e-3

    again = run_collection(listing, out, ClusterOptions(actors=1, batch_size=4), model="scrfd_500m_kps", weights=weights, threads=1)
    assert (again.skipped, again.processed, again.shards) == (8, 0, [])
