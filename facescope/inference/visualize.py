"""Drawing detections on images."""

from __future__ import annotations

import cv2
import numpy as np

from facescope.structures import Detections

# BGR colours of the five landmarks: left eye, right eye, nose, left mouth, right mouth.
LANDMARK_COLORS = ((255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255))
BOX_COLOR = (0, 200, 0)


def draw_detections(image: np.ndarray, detections: Detections, show_scores: bool = True) -> np.ndarray:
    """Return a copy of the BGR ``image`` with boxes, scores and landmarks drawn.

    Line widths and font sizes scale with the image so small and large photos both stay legible.
    """
    canvas = image.copy()
    boxes, scores, landmarks = detections.numpy()
    thickness = max(1, round(max(canvas.shape[:2]) / 600))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    for i in range(len(detections)):
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOR, thickness)
        if show_scores:
            label = f"{scores[i]:.2f}"
            cv2.putText(canvas, label, (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, BOX_COLOR, thickness)
        if landmarks is not None:
            for (x, y), color in zip(landmarks[i], LANDMARK_COLORS):
                cv2.circle(canvas, (int(round(x)), int(round(y))), thickness + 1, color, -1)
    return canvas


def write_image(path: str, image: np.ndarray) -> None:
    """Encode and write an image; the format follows the file suffix."""
    from pathlib import Path

    from facescope.errors import FacescopeError

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(target.suffix or ".jpg", image)
    if not ok:
        raise FacescopeError(f"cannot encode image for {target}: unsupported suffix '{target.suffix}'")
    encoded.tofile(str(target))
