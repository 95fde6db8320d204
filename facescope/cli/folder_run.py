"""The folder mode of ``facescope detect``: safe with the user's files, and resumable.

* **No input is written, no output is read.** An output folder (``--out``, ``--crops``) equal to the
  source folder is refused; one inside it is left out of the scan, and so is every folder holding a
  run marker (``.facescope-run.json``, written into each output folder), so a later run never
  annotates an earlier run's output, whatever its ``--out``.
* **Nothing finished is lost.** The ``--json`` file and the markers are rewritten atomically while
  images finish (at most every :data:`SAVE_INTERVAL_S` seconds, and when the run ends or is
  interrupted by Ctrl-C or SIGTERM), so the file always parses and lists every finished image.
* **A re-run continues.** The same command skips the images that every requested output already has
  (the JSON's records, and each output folder's marker), keeping their records; a run with other
  detector settings or another source folder is refused unless ``--overwrite`` starts over.

JSON layout (one file for the whole folder)::

    {"root": "photos", "model": "retinaface_mnet025", "detector": "<the settings line>",
     "complete": true,
     "images": [{"image": "sub/a.jpg", "width": 640, "height": 480, "faces": [{"box", "score", "landmarks"}]},
                {"image": "broken.jpg", "error": "cannot decode ..."}]}

``complete`` is false while the run goes on or after an interruption; images are listed by path; an
unreadable image is recorded with its error and tried again by a re-run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facescope.cli.detect_image import crop_target, finish_one
from facescope.errors import FacescopeError, ImageReadError
from facescope.fileio import atomic_write_text
from facescope.structures import count_noun

MARKER = ".facescope-run.json"
SAVE_INTERVAL_S = 1.0  # the JSON is rewritten at most this often while images finish (and at the end)


class FolderRunError(FacescopeError):
    """A folder run cannot start as asked (outputs in place, or earlier outputs of other settings)."""


@dataclass(frozen=True)
class FolderOutputs:
    """Where a folder run writes: the JSON file, the annotated-image folder, the crops folder (each optional)."""

    json: Path | None
    out: Path | None
    crops: Path | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FolderOutputs:
        def path(value: str | None) -> Path | None:
            return Path(value) if value else None

        return cls(path(args.json), path(args.out), path(getattr(args, "crops", None)))

    def folders(self) -> list[tuple[str, Path]]:
        return [(option, p) for option, p in (("--out", self.out), ("--crops", self.crops)) if p is not None]


def check_folder_outputs(source: Path, outputs: FolderOutputs) -> None:
    """Refuse an output folder that is the source folder itself (its photos would be overwritten)."""
    for option, folder in outputs.folders():
        if folder.resolve() == source.resolve():
            raise FolderRunError(
                f"{option} {folder} is the source folder: its images would be overwritten; give another folder, "
                f"e.g. {option} {folder / 'annotated'} (an output folder inside the source is left out of the scan)"
            )


def scan_images(source: Path, outputs: FolderOutputs) -> list[Path]:
    """Images below ``source``, leaving out this run's output folders and every folder an earlier run
    marked as its output."""
    from facescope.inference.image_io import list_images

    if (source / MARKER).is_file():
        raise FolderRunError(
            f"{source} holds the output of an earlier facescope run ({MARKER}): annotated copies, not photos; "
            f"delete {source / MARKER} to use them as input"
        )
    excluded = [folder.resolve() for _, folder in outputs.folders()]
    marked: dict[Path, bool] = {}

    def is_output(path: Path) -> bool:
        resolved = path.resolve()
        if any(resolved.is_relative_to(folder) for folder in excluded):
            return True
        for parent in path.relative_to(source).parents:
            folder = source / parent
            if folder not in marked:
                marked[folder] = (folder / MARKER).is_file()
            if marked[folder]:
                return True
        return False

    return [path for path in list_images(source) if not is_output(path)]


class FolderResults:
    """The results of a folder run: records by image (relative path), saved to the JSON file and the
    output folders' markers atomically, at most every :data:`SAVE_INTERVAL_S` seconds."""

    def __init__(self, root: Path, outputs: FolderOutputs, model: str, detector_id: str, overwrite: bool) -> None:
        self.root, self.outputs = root, outputs
        self.header = {"root": str(root), "model": model, "detector": detector_id}
        self.records: dict[str, str] = {}  # image -> its JSON text (compact in memory)
        self.done: set[str] = set()  # images every requested output has
        self._last_save, self._save_cost = 0.0, 0.0
        if not overwrite:
            self._resume()

    # ------------------------------------------------------------------ resuming
    def _resume(self) -> None:
        """Take over what earlier runs with these outputs finished; refuse outputs of other settings."""
        done: set[str] | None = None
        if self.outputs.json is not None and self.outputs.json.exists():
            previous = self._read_previous("--json", self.outputs.json)
            images = previous.get("images")
            if not isinstance(images, list):
                raise FolderRunError(f"--json {self.outputs.json} holds no 'images' list; pass --overwrite to replace it")
            finished = {r["image"]: r for r in images if isinstance(r, dict) and "image" in r and "error" not in r}
            self.records = {name: json.dumps(record) for name, record in finished.items()}
            done = set(finished)
        elif self.outputs.json is not None:
            done = set()
        for option, folder in self.outputs.folders():
            marker = folder / MARKER
            previous = self._read_previous(option, marker) if marker.exists() else {"done": []}
            folder_done = set(previous.get("done", []))
            done = folder_done if done is None else done & folder_done
        self.done = done or set()
        self.records = {name: text for name, text in self.records.items() if name in self.done}

    def _read_previous(self, option: str, path: Path) -> dict[str, Any]:
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FolderRunError(f"{option}: {path} exists and is not a facescope folder result ({exc}); pass --overwrite to start over") from None
        if not isinstance(previous, dict):
            raise FolderRunError(f"{option}: {path} exists and is not a facescope folder result; pass --overwrite to start over")
        for key in ("root", "detector"):
            if previous.get(key) != self.header[key]:
                raise FolderRunError(
                    f"{option}: {path} holds a run with {key} '{previous.get(key)}', this one has '{self.header[key]}'; "
                    "pass --overwrite to start over, or choose other outputs"
                )
        return previous

    # ------------------------------------------------------------------ recording
    def add(self, image: str, record: dict[str, Any]) -> None:
        """Record a finished (or unreadable: ``"error"`` in ``record``) image; saves when due."""
        self.records[image] = json.dumps({"image": image, **record})
        if "error" not in record:
            self.done.add(image)
        if time.monotonic() - self._last_save >= max(SAVE_INTERVAL_S, 5 * self._save_cost):
            self.save(complete=False)

    def save(self, complete: bool) -> None:
        """Write the JSON (every record, by image path) and the markers, each atomically."""
        started = time.monotonic()
        if self.outputs.json is not None:
            opening = json.dumps({**self.header, "complete": complete})[:-1]  # without the closing brace
            body = ",\n ".join(self.records[name] for name in sorted(self.records))
            atomic_write_text(self.outputs.json, f'{opening}, "images": [\n {body}\n]}}\n' if body else f'{opening}, "images": []}}\n')
        for _, folder in self.outputs.folders():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / MARKER, json.dumps({**self.header, "complete": complete, "done": sorted(self.done)}) + "\n")
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does (results saved), instead of killing it mid-write."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_folder(detector: Any, folder: Path, args: argparse.Namespace) -> int:
    """Detect faces in every image below ``folder``; see the module docstring for the guarantees."""
    from tqdm import tqdm

    outputs = FolderOutputs.from_args(args)
    check_folder_outputs(folder, outputs)
    paths = scan_images(folder, outputs)
    if not paths:
        raise FacescopeError(f"no images found in {folder}")
    results = FolderResults(folder, outputs, detector.model_name, detector.describe(), getattr(args, "overwrite", False))
    todo = [p for p in paths if str(p.relative_to(folder)) not in results.done]
    skipped = len(paths) - len(todo)
    if skipped and not args.quiet:
        print(f"facescope: continuing: {skipped} of {len(paths)} images were finished by an earlier run", file=sys.stderr)
    failures, finished = 0, False
    batch_size = getattr(args, "batch_size", None) or 1
    try:
        with _sigterm_as_interrupt(), tqdm(total=len(todo), desc="detect", unit="img", disable=args.quiet) as bar:
            # one batch of decoded images at a time: memory stays flat over thousands of images, and a batch
            # runs as one forward pass where the backend batches (Detector.batches_natively)
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                failures += _detect_batch_into(results, detector, folder, chunk, args)
                bar.update(len(chunk))
        finished = True
    except KeyboardInterrupt:
        print(f"facescope: interrupted with {len(results.done)} of {len(paths)} images finished and saved; "
              "the same command continues where it stopped", file=sys.stderr)  # fmt: skip
        raise
    finally:
        results.save(complete=finished)  # every image went through (unreadable ones are recorded, and retried by a re-run)
    if not args.quiet:
        total_faces = sum(len(json.loads(results.records[str(p.relative_to(folder))]).get("faces", [])) for p in paths
                          if str(p.relative_to(folder)) in results.records)  # fmt: skip
        print(f"{count_noun(len(paths), 'image')}, {count_noun(total_faces, 'face')}, {failures} unreadable ({detector.describe()})")
    return 1 if failures else 0


def _detect_batch_into(results: FolderResults, detector: Any, folder: Path, chunk: list[Path], args: argparse.Namespace) -> int:
    """Images of the folder into ``results``, one forward pass per batch; returns how many could not be
    read (each recorded with its error)."""
    from facescope.inference.image_io import read_image

    images: dict[Path, Any] = {}
    failures = 0
    for path in chunk:
        try:
            images[path] = read_image(path, args.max_pixels)
        except ImageReadError as exc:
            print(f"facescope: warning: {exc}", file=sys.stderr)
            results.add(str(path.relative_to(folder)), {"error": str(exc)})
            failures += 1
    found = detector.detect_batch(list(images.values()), color_order="bgr") if images else []
    for (path, image), detections in zip(images.items(), found):
        relative = path.relative_to(folder)
        out = Path(args.out) / relative if args.out else None
        crops = crop_target(args.crops, args.crop_size, relative)
        results.add(str(relative), finish_one(image, detections, out, not args.no_scores, crops))
    return failures
