"""Atomic file writing shared by every writer (checkpoints, weights, predictions, reports, exports):
a reader sees either the old file or the complete new one, never a partial write, and a failed
write leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file next to ``path`` for the block to write; renamed over ``path`` when the block
    exits normally, deleted when it raises. ``suffix`` matters to writers that pick a format by it
    (``np.savez`` appends ``.npz`` otherwise).

    Example:
        >>> with atomic_path("model.pth") as tmp:
        ...     torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here, not at the top: a cold `facescope detect` that writes nothing does not pay its import

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _publish(tmp_path: Path, path: Path) -> None:
    """Give ``tmp_path`` the permissions of a newly created file (0666 minus the umask; ``mkstemp``
    creates 0600) and rename it to ``path`` (atomic within one file system)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    os.replace(tmp_path, path)
