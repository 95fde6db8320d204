"""The reference of the cold-start benchmark: a minimal insightface-style SCRFD script (onnxruntime).

cv2 read, letterbox to 640x640, blobFromImage, session.run, numpy anchor decode and greedy NMS,
JSON out. Usage: python benchmarks/insightface_minimal.py IMAGE MODEL.onnx OUT.json
"""

import json
import sys

import cv2
import numpy as np
import onnxruntime

image_path, model_path, out_path = sys.argv[1:4]
image = cv2.imread(image_path)
scale = min(640 / image.shape[0], 640 / image.shape[1])
resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
canvas = np.zeros((640, 640, 3), np.uint8)
canvas[: resized.shape[0], : resized.shape[1]] = resized
blob = cv2.dnn.blobFromImage(canvas, 1 / 128, (640, 640), (127.5, 127.5, 127.5), swapRB=True)
session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
outputs = session.run(None, {session.get_inputs()[0].name: blob})
boxes, scores = [], []
for level, stride in enumerate((8, 16, 32)):
    side = 640 // stride
    centers = np.stack(np.mgrid[:side, :side][::-1], axis=-1).reshape(-1, 1, 2).repeat(2, axis=1).reshape(-1, 2) * stride
    level_scores, distances = outputs[level].reshape(-1), outputs[level + 3].reshape(-1, 4) * stride
    keep = level_scores >= 0.5
    boxes.append(np.hstack([centers[keep] - distances[keep, :2], centers[keep] + distances[keep, 2:]]))
    scores.append(level_scores[keep])
boxes, scores = np.vstack(boxes) / scale, np.concatenate(scores)
order, kept = scores.argsort()[::-1], []
areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
while order.size:
    i, rest = order[0], order[1:]
    kept.append(int(i))
    w = np.maximum(0, np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]) + 1)
    h = np.maximum(0, np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]) + 1)
    order = rest[w * h / (areas[i] + areas[rest] - w * h) <= 0.4]
faces = [{"box": boxes[i].round(2).tolist(), "score": round(float(scores[i]), 5)} for i in kept]
with open(out_path, "w") as f:
    json.dump({"image": image_path, "faces": faces}, f)
