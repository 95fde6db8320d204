"""The insightface ``model_zoo`` SCRFD pipeline (python-package 0.7.x) in plain numpy + onnxruntime.

Letterbox into the model input at the top-left of a black canvas, ``cv2.dnn.blobFromImage`` with
mean 127.5 / scale 1/128 and RGB swap, per-stride ``score >= thresh``, distance decoding around
grid-corner anchor centres, one scale ``new_h / h`` to map back, and greedy numpy NMS with "+1"
areas keeping boxes whose overlap is ``<= nms_thresh``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class InsightfaceSCRFD:
    """Reference SCRFD detector on an official ONNX file.

    Args:
        path: ONNX file (dynamic or static input; batched or unbatched outputs).
        input_size: ``(width, height)`` letterbox size.
        threads: onnxruntime intra-op threads.
    """

    strides = (8, 16, 32)
    num_anchors = 2

    def __init__(self, path: str | Path, input_size: tuple[int, int] = (640, 640), threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.use_kps = len(self.output_names) == 9
        self.input_size = input_size
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    def detect(self, image: np.ndarray, thresh: float = 0.5, nms_thresh: float = 0.4) -> tuple[np.ndarray, np.ndarray | None]:
        """BGR image -> (``[N, 5]`` x1, y1, x2, y2, score; ``[N, 5, 2]`` landmarks or None)."""
        canvas, det_scale = self._letterbox(image)
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128.0, self.input_size, (127.5, 127.5, 127.5), swapRB=True)
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        scores, boxes, kpss = self._decode(outputs, blob.shape[2], blob.shape[3], thresh)
        order = scores.ravel().argsort()[::-1]
        dets = np.hstack((boxes / det_scale, scores)).astype(np.float32, copy=False)[order]
        keep = self._nms(dets, nms_thresh)
        kps = (kpss / det_scale)[order][keep] if self.use_kps else None
        return dets[keep], kps

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        width, height = self.input_size
        im_ratio = float(image.shape[0]) / image.shape[1]
        if im_ratio > float(height) / width:
            new_h = height
            new_w = int(new_h / im_ratio)
        else:
            new_w = width
            new_h = int(new_w * im_ratio)
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[:new_h, :new_w, :] = cv2.resize(image, (new_w, new_h))
        return canvas, float(new_h) / image.shape[0]

    def _anchor_centers(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._centers:
            grid = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
            centers = (grid * stride).reshape(-1, 2)
            self._centers[key] = np.stack([centers] * self.num_anchors, axis=1).reshape(-1, 2)
        return self._centers[key]

    def _decode(self, outputs: list[np.ndarray], input_h: int, input_w: int, thresh: float):
        scores_all, boxes_all, kps_all = [], [], []
        n = len(self.strides)
        for i, stride in enumerate(self.strides):
            scores = outputs[i].reshape(-1, 1)
            distances = outputs[i + n].reshape(-1, 4) * stride
            centers = self._anchor_centers(input_h // stride, input_w // stride, stride)
            keep = np.where(scores >= thresh)[0]
            x1y1 = centers - distances[:, :2]
            x2y2 = centers + distances[:, 2:]
            scores_all.append(scores[keep])
            boxes_all.append(np.hstack([x1y1, x2y2])[keep])
            if self.use_kps:
                offsets = outputs[i + 2 * n].reshape(-1, 5, 2) * stride
                kps_all.append((centers[:, None, :] + offsets)[keep])
        kps = np.vstack(kps_all) if self.use_kps else None
        return np.vstack(scores_all), np.vstack(boxes_all), kps

    @staticmethod
    def _nms(dets: np.ndarray, thresh: float) -> list[int]:
        x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
        areas = (x2 - x1 + 1) * (y2 - y1 + 1)
        order = scores.argsort()[::-1]
        keep = []
        while order.size > 0:
            i = order[0]
            keep.append(int(i))
            w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
            h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
            inter = w * h
            overlap = inter / (areas[i] + areas[order[1:]] - inter)
            order = order[np.where(overlap <= thresh)[0] + 1]
        return keep
