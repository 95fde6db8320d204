"""``facescope detect FOLDER --batch-size N``: the same JSON as batch 1 (unreadable files keep their place)."""

import json
import shutil

import numpy as np
import pytest

from facescope.cli import main

pytestmark = pytest.mark.shared


def test_folder_batch_size_gives_the_batch_1_records(scrfd_onnx, wider_val_images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in wider_val_images[:5]:
        shutil.copy(path, folder / path.name)
    (folder / wider_val_images[5].name).write_bytes(b"not an image")  # sorts among the real ones
    records = {}
    for batch_size in ("1", "4"):
        js = tmp_path / f"batch{batch_size}.json"
        code = main(["detect", str(folder), "--model", "scrfd_500m_kps", "--weights", str(scrfd_onnx["scrfd_500m_kps"]),
                     "--threads", "1", "--quiet", "--batch-size", batch_size, "--json", str(js)])
        assert code == 1  # the unreadable file
        records[batch_size] = json.loads(js.read_text())["images"]
    single, batched = records["1"], records["4"]
    assert [r["image"] for r in single] == [r["image"] for r in batched] == sorted(p.name for p in folder.iterdir())
    assert sum("error" in r for r in batched) == 1
    faces = 0
    for a, b in zip(single, batched):
        assert ("error" in a) == ("error" in b)
        if "error" in a:
            continue
        assert len(a["faces"]) == len(b["faces"]) and (a["width"], a["height"]) == (b["width"], b["height"])
        faces += len(a["faces"])
        for fa, fb in zip(a["faces"], b["faces"]):
            assert np.abs(np.subtract(fa["box"], fb["box"])).max() <= 1e-3
    assert faces > 30
