"""Video in, tracked faces out: reading files, cameras and stream URLs (OpenCV), choosing frames,
tracking (:mod:`facescope.tracking`) and writing the annotated video and the JSON-lines record.

Decoding uses OpenCV's ``VideoCapture`` (FFmpeg inside the ``opencv-python-headless`` wheel the
base install already has): files (mp4, avi, mkv, webm, mov), camera indices and rtsp/http(s)
URLs, with no second video library and no second OpenCV build.

Failure rules: a source that cannot be opened is refused before any work (:class:`VideoOpenError`);
a file that ends before the frame count its header declares, or a live source (camera, URL
without a frame count) that stops delivering frames, raises :class:`VideoStreamError` *after*
every frame read so far has been yielded, so the caller's outputs hold everything up to the failure.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from facescope.errors import FacescopeError
from facescope.inference.video_source import STREAM_SCHEMES, VIDEO_SUFFIXES, VideoSource, camera_index, is_video_source  # noqa: F401 - re-exported
from facescope.structures import Detections
from facescope.tracking import FaceTracker, TrackedFaces, TrackerConfig

# FourCC per output container: MPEG-4 part 2 and Motion-JPEG and VP8 are what the wheel's FFmpeg writes
WRITER_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
DEFAULT_WRITE_FPS = 30.0  # annotated output of a source that declares no rate (most cameras)



class VideoOpenError(FacescopeError):
    """A video file, camera or stream cannot be opened or decoded."""


class VideoStreamError(FacescopeError):
    """A source stopped delivering frames before its end (truncated file, dropped stream)."""


def quiet_decoder_logs() -> None:
    """Silence OpenCV's and FFmpeg's own warnings (process-wide: for the CLI, which reports every
    failure in one line of its own)."""
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when a capture opens
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass(frozen=True)
class FrameSelection:
    """Which frames are processed: a time range ``[start, end)`` in seconds of the source, then
    every ``every``-th frame of it or frames at about ``target_fps`` (not both).

    Frames outside the range are skipped without decoding; frames in the range that are not
    processed still go to the annotated video (with the last processed frame's faces)."""

    every: int = 1
    target_fps: float | None = None
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise FacescopeError(f"every must be >= 1 frame, got {self.every}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise FacescopeError(f"target fps must be > 0, got {self.target_fps}")
        if self.target_fps is not None and self.every != 1:
            raise FacescopeError("choose either every-N-th frame or a target rate, not both")
        if self.start < 0:
            raise FacescopeError(f"start must be >= 0 seconds, got {self.start}")
        if self.end is not None and self.end <= self.start:
            raise FacescopeError(f"end ({self.end} s) must be after start ({self.start} s)")


@dataclass(frozen=True)
class TrackedFrame:
    """One frame of a tracked video.

    Attributes:
        index: 0-based frame number in the source.
        timestamp: seconds from the source's start (None when neither the source nor the caller gives a rate).
        image: the BGR frame ``[H, W, 3]`` uint8 (None for a frame in the range left undecoded).
        faces: the tracked faces (boxes, scores, landmarks and ``track_ids``); for a frame that was
            not processed, the last processed frame's faces.
        processed: whether the detector and tracker ran on this frame.
    """

    index: int
    timestamp: float | None
    image: np.ndarray | None
    faces: TrackedFaces
    processed: bool = True

    def to_record(self) -> dict[str, Any]:
        """The JSON-lines record: ``{"frame", "time", "faces": [{"track_id", "box", "score", "landmarks"}]}``."""
        time_s = None if self.timestamp is None else round(self.timestamp, 4)
        return {"frame": self.index, "time": time_s, **self.faces.to_dict()}


class _Capture:
    """``cv2.VideoCapture`` of a file, camera or URL, opened and checked."""

    def __init__(self, source: VideoSource) -> None:
        text, camera = str(source), camera_index(source)
        self.live = camera is not None or text.lower().startswith(STREAM_SCHEMES)
        self.label = f"camera {camera}" if camera is not None else text
        if not self.live and not Path(text).is_file():
            raise VideoOpenError(f"no such video file: {text}")
        target: Any = camera if camera is not None else text
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            what = "" if isinstance(target, int) else "stream " if self.live else "video file "
            raise VideoOpenError(f"cannot open {what}{self.label}: OpenCV (FFmpeg) could not open or decode it")
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count: int | None = count if count > 0 else None
        fps = float(self.capture.get(cv2.CAP_PROP_FPS))
        self.fps: float | None = fps if math.isfinite(fps) and 0 < fps < 1000 else None
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def grab(self) -> bool:
        return bool(self.capture.grab())

    def retrieve(self) -> np.ndarray | None:
        ok, image = self.capture.retrieve()
        return image if ok else None

    def close(self) -> None:
        self.capture.release()


class _ArrayFrames:
    """An iterable of BGR arrays behind the capture interface (rate given by the caller)."""

    live = False
    frame_count = None
    size = None
    label = "frames"

    def __init__(self, frames: Iterable[np.ndarray], fps: float | None) -> None:
        self._frames = iter(frames)
        self._current: np.ndarray | None = None
        self.fps = fps

    def grab(self) -> bool:
        self._current = next(self._frames, None)
        return self._current is not None

    def retrieve(self) -> np.ndarray | None:
        return self._current

    def close(self) -> None:
        self._current = None


def open_source(source: Any, fps: float | None = None) -> _Capture | _ArrayFrames:
    """A camera index, URL or video path (opened with OpenCV; :class:`VideoOpenError` when it
    cannot be), or an iterable of BGR arrays; a source this function opened before is returned
    as it is. ``fps`` overrides a missing or wrong source rate."""
    if isinstance(source, (_Capture, _ArrayFrames)):
        return source
    if isinstance(source, (str, Path, int)):
        capture = _Capture(source)
        if fps is not None:
            capture.fps = fps
        return capture
    return _ArrayFrames(source, fps)


class _Schedule:
    """Decides per source frame: in the range or not, processed or skipped."""

    def __init__(self, selection: FrameSelection) -> None:
        self.selection = selection
        self.first_in_range: int | None = None  # every-N counts from here
        self.origin: float | None = None  # target-rate due times: origin + k / target_fps (no drift)
        self.due_step = 0

    def in_range(self, timestamp: float | None) -> bool:
        return timestamp is None or timestamp >= self.selection.start - 1e-9

    def past_end(self, timestamp: float | None) -> bool:
        return timestamp is not None and self.selection.end is not None and timestamp >= self.selection.end - 1e-9

    def process(self, index: int, timestamp: float | None) -> bool:
        sel = self.selection
        if self.first_in_range is None:
            self.first_in_range, self.origin = index, timestamp
        if sel.target_fps is not None and timestamp is not None and self.origin is not None:
            if timestamp < self.origin + self.due_step / sel.target_fps - 1e-6:
                return False
            self.due_step = math.floor((timestamp - self.origin) * sel.target_fps + 1e-6) + 1
            return True
        return (index - self.first_in_range) % sel.every == 0


def track_source(
    detect: Callable[[np.ndarray], Detections],
    source: Any,
    *,
    tracker: FaceTracker | TrackerConfig | None = None,
    selection: FrameSelection | None = None,
    fps: float | None = None,
    include_skipped: bool = False,
    decode_skipped: bool = False,
) -> Iterator[TrackedFrame]:
    """Detect and track faces frame by frame; one :class:`TrackedFrame` per processed frame
    (and per skipped frame of the range with ``include_skipped``; decoded with ``decode_skipped``).

    ``source``: what :func:`open_source` takes (a path, camera index, URL, iterable of BGR arrays,
    or a source it opened); it is closed when the loop ends.

    Memory is flat: one frame is held at a time and the tracker keeps only live and lost tracks.

    Raises:
        VideoOpenError: before any frame, when the source cannot be opened.
        VideoStreamError: after the last good frame, when a file ends before its declared frame
            count or a live source stops.
    """
    capture = open_source(source, fps)
    face_tracker = tracker if isinstance(tracker, FaceTracker) else FaceTracker(tracker)
    schedule = _Schedule(selection or FrameSelection())
    started = time.monotonic()
    last = TrackedFaces(Detections.empty(), np.zeros((0,), dtype=np.int64))
    frames_read = 0  # frames grabbed and decodable so far
    try:
        while capture.grab():
            index, frames_read = frames_read, frames_read + 1
            timestamp = _timestamp(capture, index, started)
            if schedule.past_end(timestamp):
                return
            if not schedule.in_range(timestamp):
                continue
            if schedule.process(index, timestamp):
                image = capture.retrieve()
                if image is None:  # grabbed but not decodable: the data ends here
                    frames_read = index
                    break
                last = face_tracker.update(detect(image))
                yield TrackedFrame(index, timestamp, image, last, processed=True)
            elif include_skipped:
                image = capture.retrieve() if decode_skipped else None
                yield TrackedFrame(index, timestamp, image, last, processed=False)
        _check_complete(capture, frames_read)
    finally:
        capture.close()


def _timestamp(capture: Any, index: int, started: float) -> float | None:
    """Seconds of frame ``index``: from the source's rate (files and streams that declare one),
    else the wall clock since opening (cameras), else None (arrays without a rate)."""
    if capture.fps is not None:
        return index / capture.fps
    if capture.live:
        return time.monotonic() - started
    return None


def _check_complete(capture: Any, frames_read: int) -> None:
    """A file that ended short of its declared count, or a live source that stopped, is an error."""
    if capture.frame_count is not None:
        # containers such as mkv/webm estimate the count from duration x rate: one frame of slack
        if frames_read < capture.frame_count - 1:
            raise VideoStreamError(
                f"{capture.label} ended at frame {frames_read} of the {capture.frame_count} its header declares "
                f"(truncated or corrupt); the {frames_read} frames before were processed and written"
            )
        return
    if capture.live:
        raise VideoStreamError(f"{capture.label} stopped after {frames_read} frames (stream dropped or camera disconnected); "
                               "the frames before were processed and written")


# ---------------------------------------------------------------------------- outputs


class AnnotatedVideoWriter:
    """Writes frames to ``path`` at ``fps`` (opened on the first frame, sized by it). Closing
    finalises the container, so a run stopped by Ctrl-C or a dropped stream leaves a playable
    file of the frames written so far."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self.path = path
        self.fps = fps or DEFAULT_WRITE_FPS
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        size = (int(image.shape[1]), int(image.shape[0]))
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*WRITER_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, size)
            if not self._writer.isOpened():
                raise FacescopeError(f"cannot write video {self.path}: OpenCV has no {self.path.suffix} writer here")
            self._size = size
        if size != self._size:  # a stream that changes resolution: keep the file's size
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonLinesWriter:
    """One JSON object per line, flushed line by line: after an interruption every complete line parses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
