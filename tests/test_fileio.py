"""Atomic writing: the complete file appears under its name with a new file's permissions (not
mkstemp's 0600); a failed write leaves the old file and no temporary behind."""

import os
import stat

import pytest

from facescope.fileio import atomic_path, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_path_publishes_with_umask_permissions(tmp_path, umask_022):
    target = tmp_path / "sub" / "out.bin"
    with atomic_path(target, ".part") as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".part") and not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_written_json_is_readable_by_others(tmp_path, umask_022):
    import numpy as np

    from facescope.inference.visualize import write_image

    atomic_write_text(tmp_path / "faces.json", '{"faces": []}')  # what `detect --json` writes through
    assert stat.S_IMODE(os.stat(tmp_path / "faces.json").st_mode) == 0o644
    write_image(str(tmp_path / "annotated.jpg"), np.zeros((8, 8, 3), np.uint8))  # annotated copies and crops, atomically
    assert stat.S_IMODE(os.stat(tmp_path / "annotated.jpg").st_mode) == 0o644
    atomic_write_text(tmp_path / "a.txt", "é\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "é\n"
