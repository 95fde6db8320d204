"""``facescope detect IMAGE|DIR``: find faces, draw them, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from facescope.cli import argtypes, detect_ray
from facescope.cli.common import add_model_arguments, make_detector
from facescope.cli.preflight import check_detect_paths
from facescope.cli.video import add_video_arguments, run_video
from facescope.errors import FacescopeError, ImageReadError
from facescope.fileio import atomic_path, atomic_write_text

EXAMPLES = """examples:
  facescope detect photo.jpg                                   # print the faces
  facescope detect photo.jpg --out annotated.jpg --json faces.json
  facescope detect photo.jpg --model scrfd_500m_kps --weights scrfd_500m_kps.onnx   # onnxruntime, no torch
  facescope detect photos/ --out annotated/ --json faces.json  # a folder, with a progress bar
  facescope detect group.jpg --model retinaface_mnet025 --preset official --crops faces/  # aligned 112x112 crops
  facescope detect crowd.jpg --tta retinaface --out annotated.jpg   # image pyramid + flips, box voting (slower)
  facescope detect clip.mp4 --out tracked.mp4 --json tracks.jsonl  # a video (or a camera index, an rtsp/http URL): track IDs
  facescope detect photos/ --engine ray --out-dir faces/ --actors 2  # Ray Data, Parquet shards, resumable
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="detect faces in an image or a folder of images",
        description="Detect faces; boxes, scores and 5 landmarks in the input image's pixels.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="an image file, a folder (searched recursively), a video file, a camera index or a stream URL; with --engine ray also a path-list file or a quoted glob")
    parser.add_argument("--out", help="annotated image (for a file) or folder of annotated images (for a folder)")
    parser.add_argument("--json", help="write the detections as JSON to this file")
    parser.add_argument("--no-scores", action="store_true", help="do not print scores on the annotated image")
    parser.add_argument("--quiet", action="store_true", help="do not list faces on stdout")
    parser.add_argument(
        "--crops", help="save every face aligned to the ArcFace 5-point template as CROPS/<image>_<i>.png"
    )
    parser.add_argument("--crop-size", type=argtypes.positive_int, default=112, help="side of the aligned crops (default 112)")
    parser.add_argument(
        "--batch-size",
        type=argtypes.positive_int,
        help="images per forward pass for a folder (default 1; 16 with --engine ray); a fixed-batch-1 ONNX file "
        "(the official SCRFD files) still runs them one by one",
    )
    parser.add_argument(
        "--max-pixels", type=argtypes.pixel_count, help="refuse images larger than this (default 250M, or $FACESCOPE_MAX_IMAGE_PIXELS)"
    )
    add_model_arguments(parser)
    add_video_arguments(parser)
    detect_ray.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    detect_ray.check_engine_options(args)
    if args.engine == "ray":
        return detect_ray.run(args)
    from facescope.inference.video import is_video_source

    if is_video_source(args.source):
        return run_video(args)
    source = Path(args.source)
    if not source.exists():
        raise FacescopeError(f"no such file or folder: {source}")
    check_detect_paths(source, args)  # outputs and the image's pixel budget, before any work
    # one image: a bar over its TTA passes; a folder has its own bar over the images
    detector = make_detector(args, tta_progress=not args.quiet and not source.is_dir())
    if args.crops and not detector.has_landmarks:
        raise FacescopeError(f"--crops needs landmarks, and model '{args.model}' predicts none; use a *_kps or retinaface model")
    if source.is_dir():
        return _run_folder(detector, source, args)
    return _run_image(detector, source, args)


def _detect_one(
    detector: Any,
    path: Path,
    out: Path | None,
    show_scores: bool,
    crops: tuple[Path, int] | None = None,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    from facescope.inference.image_io import read_image

    image = read_image(path, max_pixels)
    return _finish_one(image, detector.detect(image, color_order="bgr"), out, show_scores, crops)


def _finish_one(
    image: Any, detections: Any, out: Path | None, show_scores: bool, crops: tuple[Path, int] | None
) -> dict[str, Any]:
    """Draw and crop one image's detections as asked; its JSON record."""
    from facescope.inference.visualize import draw_detections, write_image

    if out is not None:
        write_image(str(out), draw_detections(image, detections, show_scores=show_scores))
    if crops is not None:
        _write_crops(image, detections, *crops)
    height, width = image.shape[:2]
    return {"width": width, "height": height, **detections.to_dict()}


def _write_crops(image: Any, detections: Any, prefix: Path, size: int) -> None:
    """Aligned faces as ``<prefix>_<i>.png``, in the detector's (descending score) order."""
    from facescope.inference.align import align
    from facescope.inference.visualize import write_image

    for i, crop in enumerate(align(image, detections, size)):
        write_image(f"{prefix}_{i}.png", crop)


def _crop_target(args: argparse.Namespace, relative: Path) -> tuple[Path, int] | None:
    if not args.crops:
        return None
    if args.crop_size <= 0:
        raise FacescopeError(f"--crop-size must be positive, got {args.crop_size}")
    return Path(args.crops) / relative.with_suffix(""), args.crop_size


def _run_image(detector: Any, path: Path, args: argparse.Namespace) -> int:
    crops = _crop_target(args, Path(path.name))
    record = _detect_one(detector, path, Path(args.out) if args.out else None, not args.no_scores, crops, args.max_pixels)
    if not args.quiet:
        print(f"{path}: {_count(len(record['faces']), 'face')} ({detector.describe()})")
        for i, face in enumerate(record["faces"]):
            print(f"  {i}: box {face['box']} score {face['score']:.3f}")
    if args.json:
        _write_json(Path(args.json), {"image": str(path), "model": detector.model_name, **record})
    return 0


def _run_folder(detector: Any, folder: Path, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facescope.inference.image_io import list_images

    paths = list_images(folder)
    if not paths:
        raise FacescopeError(f"no images found in {folder}")
    out_dir = Path(args.out) if args.out else None
    failures, total_faces = 0, 0
    batch_size = args.batch_size or 1
    bar = tqdm(total=len(paths), desc="detect", unit="img", disable=args.quiet)
    # records go straight to the JSON file: memory stays flat over thousands of images (one batch of
    # decoded images at a time); a batch runs as one forward pass where the backend batches
    with bar, _JsonArrayWriter(Path(args.json) if args.json else None, {"root": str(folder), "model": detector.model_name}, "images") as writer:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            images = _read_images(chunk, args.max_pixels)
            readable = [image for image in images if not isinstance(image, ImageReadError)]
            found = iter(detector.detect_batch(readable, color_order="bgr"))
            for path, image in zip(chunk, images):
                relative = path.relative_to(folder)
                if isinstance(image, ImageReadError):
                    failures += 1
                    print(f"facescope: warning: {image}", file=sys.stderr)
                    writer.append({"image": str(relative), "error": str(image)})
                    continue
                out = out_dir / relative if out_dir else None
                record = _finish_one(image, next(found), out, not args.no_scores, _crop_target(args, relative))
                total_faces += len(record["faces"])
                writer.append({"image": str(relative), **record})
            bar.update(len(chunk))
    if not args.quiet:
        print(f"{_count(len(paths), 'image')}, {_count(total_faces, 'face')}, {failures} unreadable ({detector.describe()})")
    return 1 if failures else 0


def _read_images(paths: list[Path], max_pixels: int | None) -> list[Any]:
    """Each path's BGR image, or the :class:`ImageReadError` that names why it cannot be read."""
    from facescope.inference.image_io import read_image

    images: list[Any] = []
    for path in paths:
        try:
            images.append(read_image(path, max_pixels))
        except ImageReadError as exc:
            images.append(exc)
    return images


class _JsonArrayWriter:
    """Writes ``{**header, key: [item, ...]}`` item by item into a temporary file next to ``path``,
    renamed over ``path`` only when complete (an interrupted run never leaves half a file).
    With ``path=None`` items are dropped."""

    def __init__(self, path: Path | None, header: dict[str, Any], key: str) -> None:
        self.path, self.header, self.key = path, header, key
        self._stack = ExitStack()
        self._file: TextIO | None = None
        self._count = 0

    def __enter__(self) -> _JsonArrayWriter:
        if self.path is not None:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
            opening = json.dumps(self.header)[:-1]  # '{"root": ..., "model": ...' without the closing brace
            self._file.write(f"{opening}, {json.dumps(self.key)}: [")
        return self

    def append(self, item: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(("," if self._count else "") + "\n " + json.dumps(item))
            self._count += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._file is not None and exc_type is None:
            self._file.write("\n]}\n")
        # closes the file, then publishes it (or deletes it when the loop raised)
        self._stack.__exit__(exc_type, exc, tb)


def _count(number: int, noun: str) -> str:
    """``1 face``, ``0 faces``, ``6 faces``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically, so an interrupted run never leaves half a file."""
    atomic_write_text(path, json.dumps(payload, indent=1))
