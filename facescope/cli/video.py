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


def _seconds(text: str) -> float:
    """A time in seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got '{text}'") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be seconds >= 0, got '{text}'")
    return value


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
    group.add_argument("--start", type=_seconds, default=0.0, metavar="SEC", help="start at this time of the video (seconds)")
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
    """Track faces over the video source; returns the exit code."""
    from facescope.cli.common import make_detector
    from facescope.cli.preflight import check_output_file
    from facescope.inference.video import FrameSelection, VideoStreamError, check_video_output, open_source, quiet_decoder_logs
    from facescope.tracking import TrackerConfig

    quiet_decoder_logs()  # the CLI owns its process; failures are reported as one line below
    if getattr(args, "crops", None):
        raise FacescopeError("--crops is for images; for a video use --json (faces per frame) or --out")
    out = Path(args.out) if args.out else None
    if out is not None:
        check_video_output(out)
        check_output_file("--out", out)
    if args.json:
        check_output_file("--json", args.json)
    selection = FrameSelection(every=args.every, target_fps=args.target_fps, start=args.start, end=args.end)
    tracker = TrackerConfig(track_buffer=args.track_buffer, smoothing=args.smooth)
    probe = open_source(_source(args.source))  # an unopenable source fails here, before the model loads
    fps, frame_count, size = probe.fps, probe.frame_count, probe.size
    probe.close()
    _check_pixels(args, size)
    if args.score_thresh is None:
        args.score_thresh = tracker.low_thresh  # the second association needs the low-score detections
    detector = make_detector(args)
    stopped: VideoStreamError | None = None
    with ExitStack() as stack:
        video = stack.enter_context(_writer(out, fps)) if out is not None else None
        lines = stack.enter_context(_lines(Path(args.json))) if args.json else None
        frames = _track(detector, args, selection, tracker, decode_skipped=video is not None)
        bar = _progress(args, frame_count, fps, selection)
        stack.callback(bar.close)
        processed = 0
        try:
            for frame in frames:
                if lines is not None and frame.processed:
                    lines.write(frame.to_record())
                if video is not None and frame.image is not None:
                    video.write(_annotate(frame, not args.no_scores))
                if frame.processed:
                    processed += 1
                    bar.update(1)
        except VideoStreamError as exc:  # the outputs are closed (finalised) by the ExitStack
            stopped = exc
    if not args.quiet:
        written = f", {video.frames} frames written to {out}" if video is not None else ""
        print(f"{args.source}: {processed} frames processed{written} ({detector.describe()})")
    if stopped is not None:
        print(f"facescope: error: {stopped}", file=sys.stderr)
        return 1
    return 0


def _source(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _check_pixels(args: argparse.Namespace, size: Any) -> None:
    """The frame size the source declares against the pixel budget (``--max-pixels``)."""
    from facescope.inference.image_io import check_image_pixels

    if size is not None and all(size):
        check_image_pixels(size[0], size[1], args.max_pixels, args.source)


def _track(detector: Any, args: argparse.Namespace, selection: Any, tracker: Any, decode_skipped: bool) -> Any:
    from facescope.inference.video import track_source

    return track_source(
        lambda image: detector.detect(image, color_order="bgr"), _source(args.source), tracker=tracker,
        selection=selection, include_skipped=decode_skipped, decode_skipped=decode_skipped,
    )  # fmt: skip


def _writer(out: Path, fps: float | None) -> Any:
    from facescope.inference.video import AnnotatedVideoWriter

    return AnnotatedVideoWriter(out, fps)


def _lines(path: Path) -> Any:
    from facescope.inference.video import JsonLinesWriter

    return JsonLinesWriter(path)


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
