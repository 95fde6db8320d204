"""``SOURCE`` of a collection job -> image paths: a folder (searched recursively), a text file listing
paths (one a line; blank lines and ``#`` comments skipped; relative paths are relative to the list
file's folder), a glob pattern (``photos/**/*.jpg``), or one image file.

Paths are made absolute without resolving symbolic links (two links to one file are two images) and
listed once each, in first-seen order: they are the key a resumed run uses to skip finished images.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from facescope.errors import FacescopeError
from facescope.inference.image_io import IMAGE_SUFFIXES, list_images

GLOB_CHARACTERS = "*?["


def list_source(source: str | os.PathLike[str]) -> list[str]:
    """The absolute image paths ``source`` names; a one-line error when it names none."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        paths = [str(p) for p in list_images(path)]
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        paths = [text]
    elif path.is_file():
        paths = _read_path_list(path)
    elif any(c in text for c in GLOB_CHARACTERS):
        paths = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
    else:
        raise FacescopeError(f"no such file, folder or glob match: {text}")
    unique = list(dict.fromkeys(os.path.abspath(p) for p in paths))
    if not unique:
        raise FacescopeError(f"{text} names no images")
    return unique


def _read_path_list(path: Path) -> list[str]:
    """Paths listed in a text file; relative ones are taken from the file's folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FacescopeError(f"cannot read the path list {path}: {exc}") from None
    base = path.parent
    listed = (line.strip() for line in lines)
    return [str(base / entry) for entry in listed if entry and not entry.startswith("#")]
