"""``facescope detect IMAGE|DIR``: find faces, draw them, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facescope.cli import argtypes, detect_ray
from facescope.cli.common import add_model_arguments, make_detector
from facescope.cli.detect_image import crop_target, detect_one
from facescope.cli.preflight import check_detect_paths
from facescope.cli.video import add_video_arguments, run_video
from facescope.errors import FacescopeError
from facescope.fileio import atomic_write_text
from facescope.structures import count_noun

EXAMPLES = """examples:
  facescope detect photo.jpg                                   # print the faces
  facescope detect photo.jpg --out annotated.jpg --json faces.json
  facescope detect photo.jpg --model scrfd_500m_kps --weights scrfd_500m_kps.onnx   # onnxruntime, no torch
  facescope detect photos/ --out annotated/ --json faces.json  # a folder; Ctrl-C, then the same command continues
  facescope detect group.jpg --crops faces/                     # aligned 112x112 crops of the faces
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
    parser.add_argument(
        "source",
        help="an image file, a folder (searched recursively), a video file, a camera index or a stream URL; "
        "with --engine ray also a path-list file or a quoted glob",
    )
    parser.add_argument("--out", help="annotated image (for a file) or folder of annotated images (for a folder)")
    parser.add_argument(
        "--json",
        help="write the detections as JSON to this file (a folder: rewritten as images finish; a re-run continues it)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="a folder: start over instead of continuing the outputs of an earlier run"
    )
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
    from facescope.inference.video_source import is_video_source

    if is_video_source(args.source):
        return run_video(args)
    source = Path(args.source)
    if not source.exists():
        raise FacescopeError(f"no such file or folder: {source}")
    check_detect_paths(source, args)  # outputs and the image's pixel budget, before any work
    if source.is_dir():
        from facescope.cli.folder_run import FolderOutputs, check_folder_outputs

        check_folder_outputs(source, FolderOutputs.from_args(args))  # never write into the source images
    # one image: a bar over its TTA passes; a folder has its own bar over the images
    detector = make_detector(args, tta_progress=not args.quiet and not source.is_dir())
    if args.crops and not detector.has_landmarks:
        raise FacescopeError(f"--crops needs landmarks, and model '{args.model}' predicts none; use a *_kps or retinaface model")
    _note_benchmark_threshold(detector, args)
    if source.is_dir():
        from facescope.cli.folder_run import run_folder

        return run_folder(detector, source, args)
    return _run_image(detector, source, args)


LOW_SCORE_THRESHOLD = 0.1  # below this a preset keeps candidates for a benchmark's PR curve, not faces to show


def _note_benchmark_threshold(detector: Any, args: argparse.Namespace) -> None:
    """Benchmark presets (``official``, ``widerface``) keep every candidate down to a score of ~0.02,
    as the evaluation protocols need; on a photo most of those are not faces. Say so, once."""
    threshold = detector.preset.postprocess.score_thresh
    if args.score_thresh is None and threshold < LOW_SCORE_THRESHOLD and (args.out or args.crops or args.json):
        print(
            f"facescope: note: preset '{args.preset}' keeps the benchmark score threshold {threshold:g}, so most low-score "
            "detections are not faces; add --score-thresh 0.5 (or use the default preset) for photos",
            file=sys.stderr,
        )


def _run_image(detector: Any, path: Path, args: argparse.Namespace) -> int:
    crops = crop_target(args.crops, args.crop_size, Path(path.name))
    record = detect_one(detector, path, Path(args.out) if args.out else None, not args.no_scores, crops, args.max_pixels)
    if not args.quiet:
        print(f"{path}: {count_noun(len(record['faces']), 'face')} ({detector.describe()})")
        for i, face in enumerate(record["faces"]):
            print(f"  {i}: box {face['box']} score {face['score']:.3f}")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({"image": str(path), "model": detector.model_name, **record}, indent=1))
    return 0
