"""Drawing detections on images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facescope.structures import Detections, to_numpy

# BGR colours of the five landmarks: left eye, right eye, nose, left mouth, right mouth.
LANDMARK_COLORS = ((255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255))
BOX_COLOR = (0, 200, 0)
LABEL_TEXT_COLOR = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE = 0.3  # below this OpenCV's Hershey digits stop being legible
SHRINK = 0.8  # a label that does not fit is tried again this much smaller, down to MIN_FONT_SCALE


@dataclass(frozen=True)
class Label:
    """A score label: ``text`` drawn with its baseline origin at ``origin`` and ``scale``; ``rect``
    = ``(x1, y1, x2, y2)`` pixels it covers (background included)."""

    text: str
    origin: tuple[int, int]
    scale: float
    thickness: int
    rect: tuple[int, int, int, int]


def place_labels(
    boxes: np.ndarray, texts: Sequence[str], image_hw: tuple[int, int], font_scale: float, thickness: int
) -> list[Label | None]:
    """Place one label per box so that no two labels overlap, in the given order (highest score
    first): above the box, else below it; a label that fits nowhere is
    retried smaller (x0.8 down to ``MIN_FONT_SCALE``) and otherwise left out (None).

    Args:
        boxes: ``[N, 4]`` x1, y1, x2, y2 pixels.
        texts: N label texts.
        image_hw: ``(height, width)``; labels stay inside the image.
    """
    height, width = image_hw
    taken = np.zeros((0, 4), dtype=np.int64)  # rects of the labels placed so far
    labels: list[Label | None] = []
    for box, text in zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), texts):
        label = None
        scale = font_scale
        while label is None and scale >= MIN_FONT_SCALE - 1e-9:
            weight = max(1, round(thickness * scale / font_scale))
            label = _first_free_spot(box, text, scale, weight, (height, width), taken)
            scale *= SHRINK
        labels.append(label)
        if label is not None:
            taken = np.vstack([taken, np.asarray(label.rect, dtype=np.int64)[None]])
    return labels


def _first_free_spot(
    box: np.ndarray, text: str, scale: float, weight: int, image_hw: tuple[int, int], taken: np.ndarray
) -> Label | None:
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, weight)
    label_w, label_h = text_w + 2, text_h + baseline + 2  # 1 px of background around the text
    height, width = image_hw
    if label_w > width or label_h > height:
        return None
    x1, y1, _, y2 = (int(round(v)) for v in box)
    left = min(max(x1, 0), width - label_w)  # shifted sideways to stay inside the image
    for top in (y1 - label_h, y2 + 1):  # above the box, else below it (inside, it would hide a small face)
        rect = (left, top, left + label_w, top + label_h)
        if top < 0 or rect[3] > height:
            continue
        overlaps = (taken[:, 0] < rect[2]) & (rect[0] < taken[:, 2]) & (taken[:, 1] < rect[3]) & (rect[1] < taken[:, 3])
        if not overlaps.any():
            return Label(text, (left + 1, top + 1 + text_h), scale, weight, rect)
    return None


def draw_detections(image: np.ndarray, detections: Detections, show_scores: bool = True) -> np.ndarray:
    """Return a copy of the BGR ``image`` with boxes, scores and landmarks drawn.

    Line widths and font sizes scale with the image so small and large photos both stay legible.
    Score labels never cover each other: in crowds a label is drawn smaller, or not at all, where
    it would (:func:`place_labels`).
    """
    canvas = image.copy()
    boxes, scores = to_numpy(detections.boxes).reshape(-1, 4), to_numpy(detections.scores).reshape(-1)
    landmarks = None if detections.landmarks is None else to_numpy(detections.landmarks)
    thickness = max(1, round(max(canvas.shape[:2]) / 600))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, thickness)
        if landmarks is not None:
            for (x, y), color in zip(landmarks[i], LANDMARK_COLORS):
                cv2.circle(canvas, (int(round(x)), int(round(y))), thickness + 1, color, -1)
    if show_scores and len(detections):
        texts = [f"{score:.2f}" for score in scores]
        for label in place_labels(boxes, texts, canvas.shape[:2], font_scale, thickness):
            if label is None:
                continue
            rx1, ry1, rx2, ry2 = label.rect
            cv2.rectangle(canvas, (rx1, ry1), (rx2 - 1, ry2 - 1), BOX_COLOR, -1)
            cv2.putText(canvas, label.text, label.origin, FONT, label.scale, LABEL_TEXT_COLOR, label.thickness, cv2.LINE_AA)
    return canvas


def write_image(path: str, image: np.ndarray) -> None:
    """Encode and write an image atomically (a reader, or an interrupted run, never sees half a
    file); the format follows the file suffix."""
    from pathlib import Path

    from facescope.errors import FacescopeError
    from facescope.fileio import atomic_path

    target = Path(path)
    ok, encoded = cv2.imencode(target.suffix or ".jpg", image)
    if not ok:
        raise FacescopeError(f"cannot encode image for {target}: unsupported suffix '{target.suffix}'")
    with atomic_path(target) as tmp:  # creates the parent folders
        encoded.tofile(str(tmp))
