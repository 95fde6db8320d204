"""``facescope detect VIDEO|CAMERA|URL``: detect and track faces over a video, write the annotated
video (``--out``) and one JSON line per processed frame (``--json``).

``facescope detect`` hands every source that :func:`~facescope.inference.video.is_video_source`
recognises to :func:`run_video`; the options below are added to its parser.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from facescope.cli import argtypes
from facescope.errors import FacescopeError


def _frames(text: str) -> int:
    """A frame count >= 0."""
    return 0 if text.strip() == "0" else argtypes.positive_int(text)


def _smoothing(text: str) -> float:
    value = argtypes.probability(text)
    if value >= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got '{text}'")
    return value


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Frame selection and tracker options (used only for video sources)."""
    group = parser.add_argument_group("video (a video file, a camera index such as 0, or an rtsp/http URL)")
    group.add_argument("--every", type=argtypes.positive_int, default=1, metavar="N", help="process every N-th frame (default 1)")
    group.add_argument("--target-fps", type=argtypes.positive_float, metavar="FPS", help="process about FPS frames per second of video")
    group.add_argument("--start", type=argtypes.non_negative_float, default=0.0, metavar="SEC", help="start at this time of the video (seconds)")
    group.add_argument("--end", type=argtypes.positive_float, metavar="SEC", help="stop at this time of the video (seconds)")
    group.add_argument(
        "--track-buffer", type=_frames, default=30, metavar="N",
        help="processed frames a lost face keeps its track ID (default 30)",
    )  # fmt: skip
    group.add_argument(
        "--smooth", type=_smoothing, default=0.0, metavar="A",
        help="temporal smoothing of boxes and landmarks: weight of the previous value, 0 (off, default) .. <1",
    )  # fmt: skip


def run_video(args: argparse.Namespace) -> int:
    """Track faces over the video source; returns the exit code (1 when the source stopped early)."""
    from facescope.cli.common import make_detector
    from facescope.inference.video import FrameSelection, open_source, quiet_decoder_logs
    from facescope.tracking import TrackerConfig

    quiet_decoder_logs()  # the CLI owns its process; failures are reported as one line below
    _check_outputs(args)
    selection = FrameSelection(every=args.every, target_fps=args.target_fps, start=args.start, end=args.end)
    tracker = TrackerConfig(track_buffer=args.track_buffer, smoothing=args.smooth)
    capture = open_source(args.source)  # an unopenable source fails here, before the model loads
    try:
        if capture.size is not None and all(capture.size):
            from facescope.inference.image_io import check_image_pixels

            check_image_pixels(capture.size[0], capture.size[1], args.max_pixels, args.source)
        if args.score_thresh is None:
            args.score_thresh = tracker.low_thresh  # the second association needs the low-score detections
        detector = make_detector(args)
    except BaseException:
        capture.close()
        raise
    return _write_outputs(args, detector, capture, selection, tracker)


def _check_outputs(args: argparse.Namespace) -> None:
    """``--out`` (a video container) and ``--json`` (a file), before anything is opened."""
    from facescope.cli.preflight import check_output_file
    from facescope.inference.video import WRITER_FOURCC

    containers = tuple(WRITER_FOURCC)  # the files OpenCV writes a video into

    if getattr(args, "crops", None):
        raise FacescopeError("--crops is for images; for a video use --json (faces per frame) or --out")
    for option, value in (("--out", args.out), ("--json", args.json)):
        if value:
            target = Path(value)
            if target.exists() and target.resolve() == Path(args.source).resolve():
                raise FacescopeError(f"{option} {target} is the source video; it would be overwritten")
            check_output_file(option, target, containers if option == "--out" else ())


def _write_outputs(args: argparse.Namespace, detector: Any, capture: Any, selection: Any, tracker: Any) -> int:
    """Run the tracked frames into the annotated video and the JSON lines; both are closed (the
    video finalised) on every exit, Ctrl-C included."""
    from facescope.inference.video import AnnotatedVideoWriter, JsonLinesWriter, VideoStreamError, track_source

    stopped: VideoStreamError | None = None
    processed = 0
    with ExitStack() as stack:
        video = stack.enter_context(AnnotatedVideoWriter(Path(args.out), capture.fps)) if args.out else None
        lines = stack.enter_context(JsonLinesWriter(Path(args.json))) if args.json else None
        bar = stack.enter_context(_progress(args, capture.frame_count, capture.fps, selection))
        frames = track_source(
            lambda image: detector.detect(image, color_order="bgr"), capture, tracker=tracker,
            selection=selection, include_skipped=video is not None, decode_skipped=video is not None,
        )  # fmt: skip
        try:
            for frame in frames:
                if frame.processed and lines is not None:
                    lines.write(frame.to_record())
                if video is not None and frame.image is not None:
                    video.write(_annotate(frame, not args.no_scores))
                processed += frame.processed
                bar.update(int(frame.processed))
        except VideoStreamError as exc:  # everything before it is written; the ExitStack finalises the files
            stopped = exc
    if not args.quiet:
        written = f", {video.frames} frames written to {args.out}" if video is not None else ""
        print(f"{args.source}: {processed} frames processed{written} ({detector.describe()})")
    if stopped is not None:
        print(f"facescope: error: {stopped}", file=sys.stderr)
        return 1
    return 0


def _annotate(frame: Any, show_scores: bool) -> Any:
    from facescope.inference.visualize import draw_detections

    faces = frame.faces
    scores = faces.detections.scores
    labels = [f"#{i} {s:.2f}" if show_scores else f"#{i}" for i, s in zip(faces.track_ids, scores)]
    return draw_detections(frame.image, faces.detections, labels=labels)


def _progress(args: argparse.Namespace, frame_count: int | None, fps: float | None, selection: Any) -> Any:
    """A bar over the processed frames (its rate is the processing fps); a total when it can be known."""
    from tqdm import tqdm

    total = None
    if frame_count is not None and fps is not None:
        first = int(round(selection.start * fps))
        last = frame_count if selection.end is None else min(frame_count, int(round(selection.end * fps)))
        span = max(last - first, 0)
        total = -(-span // selection.every) if selection.target_fps is None else int(span / fps * selection.target_fps) + 1
    return tqdm(total=total, desc="track", unit="frame", disable=args.quiet)
