"""Which ``facescope detect`` sources are videos (pure Python: the image path checks it on every run without
importing the video reader, the tracker or OpenCV's video module)."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
VideoSource = str | Path | int


def is_video_source(source: VideoSource) -> bool:
    """A camera index (an int or a string of digits), a stream URL or a path with a video suffix."""
    if isinstance(source, int):
        return True
    text = str(source)
    if text.isdigit():
        return not Path(text).exists()  # a file or folder named "0" stays a path
    return text.lower().startswith(STREAM_SCHEMES) or Path(text).suffix.lower() in VIDEO_SUFFIXES
