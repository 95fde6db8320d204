"""Test clips with exactly known face tracks, made at test time from a real photo, and MOT scoring.

A clip moves a photo under a fixed 640x480 frame by a similarity transform per frame (a pan, a
zoom); the faces the detector finds on the still photo (the *reference faces*) move with the
photo, so every frame's true boxes and identities are exact. A face may be *hidden* for some
frames (painted over with a grey box): it is absent from the truth there. A face cut by the
frame's border is *ignored*: not in the truth, and a hypothesis on it is dropped before scoring
(as MOT benchmarks ignore regions), because the detector may or may not find half a face.

Scoring: py-motmetrics (MOTA, IDF1, identity switches) with IoU >= 0.5 as a match. motmetrics'
own ``distances.iou_matrix`` calls ``np.asfarray`` (removed in numpy 2), so the distance matrix
is computed here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

FRAME_SIZE = (640, 480)  # width, height
BACKGROUND = (114, 114, 114)
MATCH_IOU = 0.5
IGNORE_IOU = 0.3


@dataclass(frozen=True)
class ClipSpec:
    """``transforms[t] = (scale, tx, ty)``: photo pixel p -> frame pixel ``scale * p + (tx, ty)``;
    ``hidden[face] = (first, last)`` frames (inclusive) where the face is painted over."""

    name: str
    transforms: tuple[tuple[float, float, float], ...]
    hidden: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.transforms)


def pan(name: str, frames: int, scale: float, photo_hw: tuple[int, int]) -> ClipSpec:
    """The frame slides left to right across the photo (scaled by ``scale``), vertically centred."""
    width, height = FRAME_SIZE
    span = photo_hw[1] * scale - width
    ty = (height - photo_hw[0] * scale) / 2
    transforms = tuple((scale, -span * t / max(frames - 1, 1), ty) for t in range(frames))
    return ClipSpec(name, transforms)


def zoom(name: str, frames: int, scales: tuple[float, float], photo_hw: tuple[int, int]) -> ClipSpec:
    """The photo's centre stays at the frame's centre while the scale grows linearly."""
    width, height = FRAME_SIZE
    transforms = []
    for t in range(frames):
        s = scales[0] + (scales[1] - scales[0]) * t / max(frames - 1, 1)
        transforms.append((s, width / 2 - s * photo_hw[1] / 2, height / 2 - s * photo_hw[0] / 2))
    return ClipSpec(name, tuple(transforms))


def drift(name: str, frames: int, scale: float, speed: float, photo_hw: tuple[int, int], hidden: dict[int, tuple[int, int]]) -> ClipSpec:
    """The whole photo in view, drifting right by ``speed`` px per frame; faces hidden as given."""
    width, height = FRAME_SIZE
    tx0, ty = (width - photo_hw[1] * scale) / 2 - speed * frames / 2, (height - photo_hw[0] * scale) / 2
    return ClipSpec(name, tuple((scale, tx0 + speed * t, ty) for t in range(frames)), dict(hidden))


def truth_at(spec: ClipSpec, faces: np.ndarray, t: int) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    """Frame ``t``'s true faces ``{face index: box}`` (fully inside, not hidden) and ignored boxes
    (cut by the border, clipped to the frame)."""
    scale, tx, ty = spec.transforms[t]
    boxes = faces * scale + np.array([tx, ty, tx, ty])
    width, height = FRAME_SIZE
    truth, ignored = {}, []
    for i, box in enumerate(boxes):
        first, last = spec.hidden.get(i, (-1, -2))
        if first <= t <= last:
            continue
        inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
        clipped = np.clip(box, 0, [width, height, width, height])
        if inside:
            truth[i] = box
        elif clipped[2] > clipped[0] and clipped[3] > clipped[1]:
            ignored.append(clipped)
    return truth, ignored


def render(spec: ClipSpec, photo: np.ndarray, faces: np.ndarray) -> Iterator[np.ndarray]:
    """The clip's BGR frames, one at a time."""
    width, height = FRAME_SIZE
    for t, (scale, tx, ty) in enumerate(spec.transforms):
        matrix = np.array([[scale, 0, tx], [0, scale, ty]], dtype=np.float64)
        frame = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA, borderValue=BACKGROUND)
        for i, (first, last) in spec.hidden.items():
            if first <= t <= last:
                x1, y1, x2, y2 = faces[i] * scale + np.array([tx, ty, tx, ty])
                pad_x, pad_y = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
                cv2.rectangle(frame, (int(x1 - pad_x), int(y1 - pad_y)), (int(x2 + pad_x), int(y2 + pad_y)), BACKGROUND, -1)
        yield frame


def write_video(path: str, frames: Iterator[np.ndarray], fps: float = 25.0, fourcc: str = "mp4v") -> int:
    """Encode frames into ``path``; returns the number written."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, FRAME_SIZE)
    count = 0
    for frame in frames:
        writer.write(frame)
        count += 1
    writer.release()
    return count


def iou_distance(truth: np.ndarray, hypotheses: np.ndarray) -> np.ndarray:
    """``[G, 4] x [H, 4]`` -> ``1 - IoU``, NaN where IoU < ``MATCH_IOU`` (motmetrics' "cannot match")."""
    from facescope.tracking.association import iou_matrix

    iou = iou_matrix(truth, hypotheses)
    return np.where(iou >= MATCH_IOU, 1.0 - iou, np.nan)


def score(spec: ClipSpec, faces: np.ndarray, results: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """MOTA, IDF1, identity switches, misses and false positives of per-frame ``(boxes [N, 4],
    track_ids [N])`` against the clip's truth."""
    import motmetrics as mm

    from facescope.tracking.association import iou_matrix

    accumulator = mm.MOTAccumulator(auto_id=True)
    for t, (boxes, ids) in enumerate(results):
        truth, ignored = truth_at(spec, faces, t)
        keep = np.ones(len(boxes), dtype=bool)
        if ignored and len(boxes):
            keep = iou_matrix(boxes, np.stack(ignored)).max(axis=1) < IGNORE_IOU
        boxes, ids = boxes[keep], ids[keep]
        true_ids = sorted(truth)
        true_boxes = np.stack([truth[i] for i in true_ids]) if true_ids else np.zeros((0, 4))
        accumulator.update(true_ids, [int(i) for i in ids], iou_distance(true_boxes, boxes))
    summary = mm.metrics.create().compute(
        accumulator, metrics=["mota", "idf1", "num_switches", "num_misses", "num_false_positives", "num_objects"]
    )
    row = summary.iloc[0]
    return {key: float(row[key]) for key in summary.columns}


def t1_clips(photo_hw: tuple[int, int], hidden_frames: int = 30) -> list[ClipSpec]:
    """The acceptance clips on ``images/crowd/t1.jpg`` (six faces about 100 px tall): a pan and
    a zoom (faces entering and leaving at the borders), and a drift with face 0 hidden for
    ``hidden_frames`` frames."""
    return [
        pan("pan", 60, 0.8, photo_hw),
        zoom("zoom", 60, (0.45, 0.95), photo_hw),
        drift(f"hidden_{hidden_frames}", 20 + hidden_frames + 20, 0.5, 1.0, photo_hw, {0: (20, 19 + hidden_frames)}),
    ]
