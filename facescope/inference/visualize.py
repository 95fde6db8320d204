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
FONT_HEIGHT_AT_SCALE_1 = 22  # pixels of "0.99" in FONT at scale 1 (cv2.getTextSize)
LABEL_TO_FACE = 0.3  # a label's text is about this fraction of its face's height
MIN_DOT_FACE = 20  # faces smaller than this (pixels, shorter side) get no landmark dots: they would hide the face


@dataclass(frozen=True)
class Label:
    """A score label: ``text`` drawn with its baseline origin at ``origin`` and ``scale``; ``rect``
    = ``(x1, y1, x2, y2)`` pixels it covers (background included)."""

    text: str
    origin: tuple[int, int]
    scale: float
    thickness: int
    rect: tuple[int, int, int, int]


@dataclass(frozen=True)
class FaceStyle:
    """Sizes drawn for one face, following the face's size (capped by the image's).

    Attributes:
        line: box line width (pixels).
        font_scale: the label's starting font scale.
        dot_radius: landmark dot radius, 0 = no dots (the face is too small for them).
    """

    line: int
    font_scale: float
    dot_radius: int


def face_styles(boxes: np.ndarray, image_hw: tuple[int, int]) -> list[FaceStyle]:
    """Per face (``boxes [N, 4]``): line width ~ side / 60, label text ~ 0.3 x height, dots ~ side / 40;
    the image's size caps them (a huge face in a huge photo) and a face under ``MIN_DOT_FACE`` px gets no dots."""
    longest = max(image_hw)
    max_line = max(1, round(longest / 600))
    max_scale = max(0.4, longest / 1600)
    styles = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        side = max(min(x2 - x1, y2 - y1), 0.0)
        line = int(np.clip(round(side / 60), 1, max_line))
        scale = float(np.clip(LABEL_TO_FACE * (y2 - y1) / FONT_HEIGHT_AT_SCALE_1, MIN_FONT_SCALE, max_scale))
        dot = 0 if side < MIN_DOT_FACE else int(np.clip(round(side / 40), 1, max_line + 1))
        styles.append(FaceStyle(line, scale, dot))
    return styles


def place_labels(
    boxes: np.ndarray, texts: Sequence[str], image_hw: tuple[int, int], font_scale: float | Sequence[float], thickness: int
) -> list[Label | None]:
    """Place one label per box, in the given order (highest score first), so that no label covers
    another label or any other face's box: above the box, else below it; a label that fits nowhere
    is retried smaller (x0.8 down to ``MIN_FONT_SCALE``) and otherwise left out (None).

    Args:
        boxes: ``[N, 4]`` x1, y1, x2, y2 pixels.
        texts: N label texts.
        image_hw: ``(height, width)``; labels stay inside the image.
        font_scale: the starting scale, one for all or one per box (:func:`face_styles`).
        thickness: text stroke at the starting scale (thinner as the label shrinks).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scales = np.broadcast_to(np.asarray(font_scale, dtype=np.float64), (len(boxes),))
    taken = np.zeros((0, 4), dtype=np.float64)  # rects of the labels placed so far
    labels: list[Label | None] = []
    for i, (box, text) in enumerate(zip(boxes, texts)):
        others = np.vstack([taken, np.delete(boxes, i, axis=0)])  # what a label must not cover
        label = None
        scale = float(scales[i])
        while label is None and scale >= MIN_FONT_SCALE - 1e-9:
            weight = max(1, round(thickness * scale / float(scales[i])))
            label = _first_free_spot(box, text, scale, weight, image_hw, others)
            scale *= SHRINK
        labels.append(label)
        if label is not None:
            taken = np.vstack([taken, np.asarray(label.rect, dtype=np.float64)[None]])
    return labels


def _first_free_spot(
    box: np.ndarray, text: str, scale: float, weight: int, image_hw: tuple[int, int], blocked: np.ndarray
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
        covers = (blocked[:, 0] < rect[2]) & (rect[0] < blocked[:, 2]) & (blocked[:, 1] < rect[3]) & (rect[1] < blocked[:, 3])
        if not covers.any():
            return Label(text, (left + 1, top + 1 + text_h), scale, weight, rect)
    return None


def draw_detections(
    image: np.ndarray, detections: Detections, show_scores: bool = True, labels: Sequence[str] | None = None
) -> np.ndarray:
    """Return a copy of the BGR ``image`` with boxes, scores and landmarks drawn.

    ``labels`` (one text per face, e.g. track IDs) replace the score labels; they are drawn
    whatever ``show_scores`` says.

    Sizes follow each face (:func:`face_styles`), so a crowd of small faces and one large portrait
    both stay readable: landmark dots stay inside their face (faces under ``MIN_DOT_FACE`` pixels
    get none), and a label is drawn only where it covers no other label and no other face
    (smaller, or not at all, in a crowd: :func:`place_labels`).
    """
    canvas = image.copy()
    boxes, scores = to_numpy(detections.boxes).reshape(-1, 4), to_numpy(detections.scores).reshape(-1)
    landmarks = None if detections.landmarks is None else to_numpy(detections.landmarks)
    styles = face_styles(boxes, canvas.shape[:2])
    for i, style in enumerate(styles):
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, style.line)
        if landmarks is not None and style.dot_radius:
            _draw_dots(canvas, landmarks[i], boxes[i], style.dot_radius)
    if labels is not None and len(labels) != len(detections):
        raise ValueError(f"{len(labels)} labels for {len(detections)} faces")
    if (show_scores or labels is not None) and len(boxes):
        texts = list(labels) if labels is not None else None
        for label in score_labels(boxes, scores, canvas.shape[:2], styles, texts):
            if label is None:
                continue
            rx1, ry1, rx2, ry2 = label.rect
            cv2.rectangle(canvas, (rx1, ry1), (rx2 - 1, ry2 - 1), BOX_COLOR, -1)
            cv2.putText(canvas, label.text, label.origin, FONT, label.scale, LABEL_TEXT_COLOR, label.thickness, cv2.LINE_AA)
    return canvas


def score_labels(
    boxes: np.ndarray,
    scores: np.ndarray,
    image_hw: tuple[int, int],
    styles: Sequence[FaceStyle] | None = None,
    texts: Sequence[str] | None = None,
) -> list[Label | None]:
    """The labels :func:`draw_detections` draws (``texts``, by default the scores as ``"0.97"``; sized by
    :func:`face_styles`), None where left out."""
    styles = face_styles(boxes, image_hw) if styles is None else styles
    texts = [f"{float(score):.2f}" for score in np.asarray(scores).reshape(-1)] if texts is None else list(texts)
    return place_labels(boxes, texts, image_hw, [style.font_scale for style in styles], 1)


def _draw_dots(canvas: np.ndarray, points: np.ndarray, box: np.ndarray, radius: int) -> None:
    """The five landmarks of one face; a dot that would stick out of the face's box is left out."""
    x1, y1, x2, y2 = box
    for (x, y), color in zip(points, LANDMARK_COLORS):
        if x1 + radius <= x <= x2 - radius and y1 + radius <= y <= y2 - radius:
            cv2.circle(canvas, (int(round(x)), int(round(y))), radius, color, -1)


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
