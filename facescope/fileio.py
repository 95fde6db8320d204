"""Atomic file publication shared by every writer (checkpoints, weights, predictions, reports, exports)."""

from __future__ import annotations

import os
from pathlib import Path


def publish(tmp_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Give ``tmp_path`` (a finished temporary file in ``path``'s folder) the permissions of a newly
    created file (0666 minus the umask: ``tempfile`` creates 0600) and atomically rename it to ``path``.
    A reader sees either the old file or the complete new one, never a partial write."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    os.replace(tmp_path, path)
    return Path(path)
