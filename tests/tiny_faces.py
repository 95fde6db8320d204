"""A tiny synthetic face set (random images with filled squares as faces, jsonl annotations) for engine and search tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_tiny_faces(root: Path, count: int = 6) -> Path:
    """``count`` 96x128 images at ``root/<i>.png``, two square "faces" each with five landmarks, and
    ``root/train.jsonl``; seeded, so every call writes the same files. Returns ``root``."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        faces = []
        for _ in range(2):
            x, y = rng.uniform(5, 80), rng.uniform(5, 50)
            w = rng.uniform(16, 40)
            box = [x, y, x + w, y + w]
            cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + w)), (0, 0, 255), -1)
            points = [[x + w * fx, y + w * fy] for fx, fy in ((0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75))]
            faces.append({"box": box, "landmarks": points})
        cv2.imwrite(str(root / f"{i}.png"), image)
        lines.append(json.dumps({"image": f"{i}.png", "faces": faces}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root
