"""BlazeFace short-range (MediaPipe face detection, model_selection=0) on the shipped ``.tflite``.

mediapipe itself does not install on every Python / numpy; this runs the wheel's own model file
through a TFLite interpreter (``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow.lite``) with
MediaPipe's documented graph settings: 128x128 RGB input scaled to [-1, 1] after an aspect-keeping
letterbox with centred zero padding; 896 SSD anchors (strides 8, 16, 16, 16; 2 + 6 anchors per
cell, unit size, centre offset 0.5); boxes decoded as ``raw / 128`` around the anchor; sigmoid
scores (logits clipped to +-100); weighted NMS at IoU 0.3 (boxes blended by score).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)


def _interpreter(path: Path, threads: int):  # noqa: ANN202 - the class depends on the package found
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            from tensorflow.lite import Interpreter  # type: ignore[no-redef]
    return Interpreter(model_path=str(path), num_threads=threads)


def ssd_anchors() -> np.ndarray:
    """``[896, 2]`` anchor centres (x, y) in [0, 1] for the short-range model."""
    centers = []
    layer = 0
    while layer < len(STRIDES):
        stride, repeats = STRIDES[layer], 0
        while layer < len(STRIDES) and STRIDES[layer] == stride:
            repeats += 2  # one anchor of aspect 1 + one interpolated-scale anchor per layer
            layer += 1
        grid = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        # (grid, grid) -> (grid*grid, 2), each cell repeated once per anchor
        cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centers.append(np.repeat(cell, repeats, axis=1).reshape(-1, 2))
    return np.concatenate(centers).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept box is the score-weighted mean of its cluster."""
    order = scores.argsort()[::-1]
    out_boxes, out_scores = [], []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        top, rest = order[0], order
        w = np.maximum(0.0, np.minimum(boxes[top, 2], boxes[rest, 2]) - np.maximum(boxes[top, 0], boxes[rest, 0]))
        h = np.maximum(0.0, np.minimum(boxes[top, 3], boxes[rest, 3]) - np.maximum(boxes[top, 1], boxes[rest, 1]))
        inter = w * h
        iou = inter / np.maximum(areas[top] + areas[rest] - inter, 1e-12)
        cluster = rest[iou > iou_threshold]
        weights = scores[cluster][:, None]
        out_boxes.append((boxes[cluster] * weights).sum(0) / weights.sum())
        out_scores.append(scores[top])
        order = rest[iou <= iou_threshold]
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32)


class BlazeFace:
    """BlazeFace short-range on BGR images; ``detect`` returns ``[N, 5]`` x1, y1, x2, y2, score."""

    def __init__(self, path: str | Path, threads: int = 1, score_thresh: float = 0.5, nms_thresh: float = 0.3) -> None:
        self.interpreter = _interpreter(Path(path), threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = {o["name"]: o["index"] for o in self.interpreter.get_output_details()}
        self.regressors_index, self.scores_index = outputs["regressors"], outputs["classificators"]
        self.anchors = ssd_anchors()
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        height, width = bgr.shape[:2]
        scale = min(INPUT_SIZE / width, INPUT_SIZE / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
        tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 127.5 - 1.0
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressors_index)[0]  # (896, 16)
        logits = self.interpreter.get_tensor(self.scores_index)[0, :, 0]  # (896,)
        scores = (1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))).astype(np.float32)
        keep = scores >= self.score_thresh
        centers = raw[keep, :2] / INPUT_SIZE + self.anchors[keep]
        half = raw[keep, 2:4] / INPUT_SIZE / 2
        boxes = np.concatenate([centers - half, centers + half], axis=1) * INPUT_SIZE  # canvas pixels
        boxes, kept_scores = weighted_nms(boxes, scores[keep], self.nms_thresh)
        boxes = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
        return np.concatenate([boxes, kept_scores[:, None]], axis=1)
