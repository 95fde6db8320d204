"""Which ``facescope detect`` sources are videos (pure Python: the image path checks it on every run without
importing the video reader, the tracker or OpenCV's video module)."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
VideoSource = str | Path | int


def camera_index(source: VideoSource) -> int | None:
    """The camera ``source`` names (an int, or a string of digits that is not an existing file or folder:
    a path named "0" stays a path), or None."""
    if isinstance(source, int):
        return source
    text = str(source)
    return int(text) if text.isdigit() and not Path(text).exists() else None


def is_video_source(source: VideoSource) -> bool:
    """A camera index (see :func:`camera_index`), a stream URL or a path with a video suffix."""
    if camera_index(source) is not None:
        return True
    text = str(source)
    return text.lower().startswith(STREAM_SCHEMES) or Path(text).suffix.lower() in VIDEO_SUFFIXES
