"""TTA geometry against a real detector on a real photo, for both backends.

The Detector's single pass is wrapped as ``run_pass`` (original size, its own NMS inside), the way
the integration will wrap it; ``np.asarray`` reads its output whether Detections hold tensors or arrays.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facescope import Detector
from facescope.inference.tta import PassTransform, get_tta_protocol, run_tta


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None] - inter)


@pytest.fixture(scope="module")
def crowd_image(shared_data: Path) -> np.ndarray:
    return cv2.imread(str(shared_data / "images/crowd/worlds-largest-selfie.jpg"))


def _run_pass(detector: Detector):  # noqa: ANN202 - a closure over the detector
    def run_pass(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        faces = detector.detect(image, color_order="bgr")
        landmarks = None if faces.landmarks is None else np.asarray(faces.landmarks, np.float32)
        return np.asarray(faces.boxes, np.float32), np.asarray(faces.scores, np.float32), landmarks

    return run_pass


# The torch backend builds the model from the ONNX file first (10-20 s on a busy 2-core machine).
@pytest.mark.parametrize("backend", [pytest.param("torch", marks=pytest.mark.slow), "onnxruntime"])
def test_flipped_detections_map_back_onto_the_detections(
    backend: str, scrfd_onnx: dict[str, Path], crowd_image: np.ndarray
) -> None:
    detector = Detector(
        "scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], backend=backend, input_size="original", score_thresh=0.4
    )
    run_pass = _run_pass(detector)
    boxes, _, points = run_pass(crowd_image)
    mirror = PassTransform.for_resize(crowd_image.shape[:2], crowd_image.shape[:2], flipped=True)
    flipped_boxes, _, flipped_points = run_pass(mirror.forward_image(crowd_image))
    back_boxes, back_points = mirror.to_original(flipped_boxes, flipped_points)
    assert points is not None and back_points is not None and len(boxes) > 100  # a crowd of small faces
    overlap = _iou(boxes, back_boxes)
    match, matched = overlap.argmax(axis=1), overlap.max(axis=1) > 0.5
    assert matched.mean() > 0.85
    # The network is not exactly mirror-symmetric, so boxes agree to a fraction of a pixel, not exactly.
    assert np.median(np.abs(boxes[matched] - back_boxes[match[matched]])) < 1.0
    swapped_error = np.median(np.abs(points[matched] - back_points[match[matched]]))
    unswapped_error = np.median(np.abs(points[matched] - back_points[match[matched]][:, [1, 0, 2, 4, 3]]))
    assert swapped_error < 1.0 and swapped_error < unswapped_error


def test_flip_protocol_on_a_real_detector(scrfd_onnx: dict[str, Path], crowd_image: np.ndarray) -> None:
    detector = Detector(
        "scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], backend="onnxruntime", input_size="original", score_thresh=0.4
    )
    run_pass = _run_pass(detector)
    single = run_pass(crowd_image)
    result = run_tta(get_tta_protocol("flip"), crowd_image, run_pass)
    assert len(result.passes) == 2 and result.landmarks is not None
    # Voting with singletons kept loses no single-pass face: each one has a merged box over it.
    assert (_iou(single[0], result.boxes).max(axis=1) > 0.5).mean() > 0.97
    assert np.all(np.diff(result.scores) <= 0)
