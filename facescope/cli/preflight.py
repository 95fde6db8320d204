"""Checks of output paths (``detect``, ``export``, ``eval``), run before any model is built or
image decoded, so that a typo costs nothing and leaves nothing behind.

Rules for ``facescope detect``:

* ``--out`` for an image: a file name with an extension OpenCV can write (``.jpg``, ``.png``,
  ``.bmp``, ``.webp``, ``.tif`` ...), not an existing folder, not the source image itself.
* ``--out`` for a folder: a folder (created if missing, sub-folders mirror the source's), not an
  existing file.
* ``--json``: a file, not an existing folder, not the source.
* ``--crops``: a folder (created if missing), not an existing file.
* Every output *file*'s parent folder must exist: a misspelt parent is refused instead of silently created.
  Output *folders* (``--out`` for a folder source, ``--crops``, ``eval --out``) are run folders: they are
  created with their parents (as ``runs/x``), unless a part of the path is an existing file.
* A single source image whose header declares more pixels than the pixel budget is refused here,
  before the detector is built (:mod:`facescope.inference.image_io`).

``facescope export --out``: a file ending in ``.onnx`` in an existing folder, not a folder.
``facescope eval ... --out``: a folder (created with its parents if missing), not a file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facescope.errors import FacescopeError


class OutputPathError(FacescopeError):
    """An output path cannot be written as asked."""


def check_detect_paths(source: Path, args: argparse.Namespace) -> None:
    """Validate ``args.out``, ``args.json`` and ``args.crops`` for ``source`` (a file or folder)."""
    is_folder = source.is_dir()
    if args.out:
        out = Path(args.out)
        if is_folder:
            _check_folder_target("--out", out)
        else:
            _check_image_target(out, source)
    if args.json:
        _check_file_target("--json", Path(args.json), source)
    if getattr(args, "crops", None):
        _check_folder_target("--crops", Path(args.crops))
    if not is_folder:
        from facescope.inference.image_io import check_image_file

        check_image_file(source, getattr(args, "max_pixels", None))


def check_output_file(option: str, path: str | Path, suffixes: tuple[str, ...] = ()) -> None:
    """A file to be written: not a folder, parent folder exists, suffix in ``suffixes`` (if given)."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{option} {path} must end in {' or '.join(suffixes)}")
    _check_file_target(option, path, None, f"model{suffixes[0] if suffixes else ''}")


def check_output_folder(option: str, path: str | Path) -> None:
    """A folder to be written (created with its parents if missing): neither it nor an ancestor is a file."""
    _check_folder_target(option, Path(path))


def _check_parent(option: str, path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"{option} {path}: folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputPathError(f"{option} {path}: {parent} is a file, not a folder")


def _check_file_target(option: str, path: Path, source: Path | None, example: str = "faces.json") -> None:
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a folder; give a file name such as {path / example}")
    if source is not None and path.exists() and path.resolve() == source.resolve():
        raise OutputPathError(f"{option} {path} is the source image; it would be overwritten")
    _check_parent(option, path)


def _check_image_target(path: Path, source: Path) -> None:
    import cv2

    if path.is_dir():
        raise OutputPathError(f"--out {path} is a folder; for one image give a file name such as {path / source.name}")
    if not path.suffix:
        raise OutputPathError(f"--out {path} has no image extension; use e.g. {path}.jpg or {path}.png")
    if not cv2.haveImageWriter(str(path)):
        raise OutputPathError(f"--out {path}: OpenCV cannot write '{path.suffix}' images; use .jpg, .png, .bmp, .webp or .tif")
    _check_file_target("--out", path, source)


def _check_folder_target(option: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path} is a file; it must be a folder (created if missing)")
    for ancestor in path.parents:  # the nearest existing ancestor must be a folder
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputPathError(f"{option} {path}: {ancestor} is a file, not a folder")
            break
