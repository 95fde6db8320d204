"""Atomic publication: complete file under the final name, permissions of a new file (not tempfile's 0600)."""

import os
import stat
import tempfile

from facescope.fileio import publish


def test_publish_renames_atomically_with_umask_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        target = tmp_path / "out.json"
        target.write_text("old")
        with tempfile.NamedTemporaryFile("w", dir=tmp_path, delete=False, suffix=".tmp") as tmp:
            tmp.write("new")
        assert stat.S_IMODE(os.stat(tmp.name).st_mode) == 0o600
        assert publish(tmp.name, target) == target
        assert target.read_text() == "new" and not os.path.exists(tmp.name)
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    finally:
        os.umask(old_umask)


def test_written_json_is_readable_by_others(tmp_path):
    from facescope.cli.detect import _write_json

    old_umask = os.umask(0o022)
    try:
        _write_json(tmp_path / "faces.json", {"faces": []})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "faces.json").st_mode) == 0o644
