"""Video reading, frame selection and the tracked-frame loop, on frames made here (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from facescope.errors import FacescopeError
from facescope.inference.video import (
    FrameSelection, VideoOpenError, VideoStreamError, is_video_source, track_source,
)  # fmt: skip
from facescope.structures import Detections


def frames(count: int, size: tuple[int, int] = (64, 48)):
    return (np.full((size[1], size[0], 3), i % 255, np.uint8) for i in range(count))


def one_face(image: np.ndarray) -> Detections:
    return Detections(np.array([[10, 10, 30, 30]], np.float32), np.array([0.9], np.float32))


def processed(selection: FrameSelection, count: int = 30, fps: float = 25.0) -> list[int]:
    return [f.index for f in track_source(one_face, frames(count), selection=selection, fps=fps)]


def test_frame_selection_by_hand():
    assert processed(FrameSelection(every=3), 10) == [0, 3, 6, 9]
    # 25 fps source, 10 fps target: due at 0, 0.1, 0.2, 0.3, 0.4 s -> frames 0, 3 (0.12 s), 5, 8 (0.32 s), 10
    assert processed(FrameSelection(target_fps=10), 11) == [0, 3, 5, 8, 10]
    assert processed(FrameSelection(start=0.2, end=0.4)) == [5, 6, 7, 8, 9]  # [0.2, 0.4) at 25 fps
    assert processed(FrameSelection(start=0.2, end=0.4, every=2)) == [5, 7, 9]


def test_skipped_frames_carry_the_last_faces_and_timestamps_follow_the_rate():
    out = list(track_source(one_face, frames(5), selection=FrameSelection(every=2), fps=10.0, include_skipped=True))
    assert [(f.index, f.processed, f.image is None) for f in out] == [
        (0, True, False), (1, False, True), (2, True, False), (3, False, True), (4, True, False)]
    assert out[1].faces is out[0].faces and out[3].timestamp == pytest.approx(0.3)
    assert out[2].to_record() == {"frame": 2, "time": 0.2, "faces": [{"track_id": 1, "box": [10.0, 10.0, 30.0, 30.0], "score": 0.9}]}


@pytest.mark.parametrize(
    "kwargs,message",
    [({"every": 0}, "every"), ({"target_fps": 0.0}, "target fps"), ({"every": 2, "target_fps": 5.0}, "not both"),
     ({"start": -1.0}, "start"), ({"start": 2.0, "end": 1.0}, "after start")],
)  # fmt: skip
def test_bad_selections_are_refused(kwargs, message):
    with pytest.raises(FacescopeError, match=message):
        FrameSelection(**kwargs)


def test_source_kinds(tmp_path):
    assert is_video_source(0) and is_video_source("1") and is_video_source("rtsp://10.0.0.2/live")
    assert is_video_source("clip.MP4") and is_video_source("https://example.org/a.m3u8")
    assert not is_video_source("photo.jpg") and not is_video_source(tmp_path)
    (tmp_path / "7").mkdir()
    assert is_video_source("7")  # a camera index ...
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not is_video_source("7")  # ... unless a file or folder of that name exists
    finally:
        os.chdir(cwd)


def test_unopenable_sources_fail_before_any_frame(tmp_path):
    with pytest.raises(VideoOpenError, match="no such video file"):
        next(track_source(one_face, str(tmp_path / "missing.mp4")))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoOpenError, match="cannot open video file .*garbage.mp4"):
        next(track_source(one_face, str(garbage)))
    with pytest.raises(VideoOpenError, match="cannot open camera 97"):
        next(track_source(one_face, 97))


def test_a_truncated_file_yields_its_good_frames_then_fails(tmp_path):
    import cv2

    from oracles.video_clips import write_video

    path = tmp_path / "clip.avi"  # Motion-JPEG in AVI: the frames before the cut stay decodable
    write_video(str(path), (cv2.resize(f, (640, 480)) for f in frames(40)), fps=25.0, fourcc="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    seen = []
    with pytest.raises(VideoStreamError, match=r"ended at frame \d+ of the 40 its header declares"):
        for frame in track_source(one_face, str(path)):
            seen.append(frame.index)
    assert 5 < len(seen) < 40 and seen == list(range(len(seen)))
