"""Training annotations: one :class:`FaceRecord` per image, read from the formats in circulation.

Supported files (``read_annotations`` picks the reader from ``format``):

* ``"retinaface"`` - RetinaFace ``label.txt``: ``# rel/path.jpg`` then one face per line,
  ``x y w h`` optionally followed by 5 x ``(lx, ly, flag)`` and a score (``-1`` = landmarks missing).
* ``"scrfd"`` - SCRFD ``labelv2.txt``: ``# rel/path.jpg W H`` then ``x1 y1 x2 y2`` optionally followed by
  5 x ``(lx, ly, flag)``.
* ``"wider"`` - official ``wider_face_*_bbx_gt.txt``: name, count, then ``x y w h blur expression
  illumination invalid occlusion pose`` lines (a count of 0 is followed by one all-zero line).
* ``"jsonl"`` - facescope's own format for custom data, one JSON object per line:
  ``{"image": "rel/path.jpg", "faces": [{"box": [x1, y1, x2, y2], "landmarks": [[x, y] x 5]}]}``;
  ``landmarks`` is optional per face and a point given as ``null`` is unannotated. The
  ``--json`` output of ``facescope detect`` on a folder can be turned into this format.

Malformed lines raise :class:`~facescope.errors.DataError` naming ``file:line`` and the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from facescope.data.wider_annotations import read_retinaface_labels, read_wider_txt
from facescope.errors import DataError

AnnotationFormat = Literal["retinaface", "scrfd", "wider", "jsonl"]


@dataclass
class FaceRecord:
    """Ground truth of one image (numpy, original pixels).

    Attributes:
        image_path: absolute path of the image.
        boxes: ``[M, 4]`` float32 x1, y1, x2, y2.
        landmarks: ``[M, 5, 2]`` float32 (zeros where unannotated).
        landmark_valid: ``[M, 5]`` bool.
    """

    image_path: Path
    boxes: np.ndarray
    landmarks: np.ndarray
    landmark_valid: np.ndarray

    @classmethod
    def from_faces(cls, image_path: Path, faces: list[tuple[list[float], list[float] | None]]) -> FaceRecord:
        """Build from ``(box_xyxy, landmarks_10_or_None)`` pairs; NaN landmark values mean missing."""
        num = len(faces)
        boxes = np.zeros((num, 4), np.float32)
        landmarks = np.zeros((num, 5, 2), np.float32)
        valid = np.zeros((num, 5), bool)
        for i, (box, points) in enumerate(faces):
            boxes[i] = box
            if points is not None:
                pts = np.asarray(points, np.float32).reshape(5, 2)
                valid[i] = np.isfinite(pts).all(axis=1)
                landmarks[i] = np.where(valid[i][:, None], pts, 0.0)
        return cls(image_path, boxes, landmarks, valid)


def read_annotations(path: str | Path, image_root: str | Path, format: AnnotationFormat) -> list[FaceRecord]:
    """Read an annotation file; image paths are resolved against ``image_root``.

    The WIDER FACE text formats are parsed by :mod:`facescope.data.wider_annotations` (one parser
    for training and evaluation); this function turns them into :class:`FaceRecord` objects.
    """
    path, image_root = Path(path), Path(image_root)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    if format == "retinaface" or format == "scrfd":
        return _from_labeled_images(path, image_root, "xywh" if format == "retinaface" else "xyxy")
    if format == "wider":
        return _from_wider_txt(path, image_root)
    if format == "jsonl":
        return _read_jsonl(path, image_root)
    raise DataError(f"unknown annotation format '{format}'; use one of ['jsonl', 'retinaface', 'scrfd', 'wider']")


def _from_labeled_images(path: Path, image_root: Path, box_format: str) -> list[FaceRecord]:
    return [
        FaceRecord(
            image_root / image.path,
            image.boxes.astype(np.float32),
            image.landmarks.astype(np.float32),
            image.landmark_valid.copy(),
        )
        for image in read_retinaface_labels(path, box_format)
    ]


def _from_wider_txt(path: Path, image_root: Path) -> list[FaceRecord]:
    records = []
    for image in read_wider_txt(path).images:
        boxes = image.boxes[(image.boxes[:, 2] > 0) & (image.boxes[:, 3] > 0)].astype(np.float32)
        boxes[:, 2:] += boxes[:, :2]  # x, y, w, h -> x1, y1, x2, y2
        faces = [(list(box), None) for box in boxes]
        records.append(FaceRecord.from_faces(image_root / image.event / f"{image.name}.jpg", faces))
    return records


def _read_jsonl(path: Path, image_root: Path) -> list[FaceRecord]:
    records = []
    with open(path) as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                faces = [(face["box"], _jsonl_points(face.get("landmarks"))) for face in item["faces"]]
                records.append(FaceRecord.from_faces(image_root / item["image"], faces))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}:{line_no}: {type(exc).__name__} {exc} in '{raw.strip()[:120]}'")
    return records


def _jsonl_points(points: list | None) -> list[float] | None:
    if points is None:
        return None
    if len(points) != 5:
        raise ValueError(f"landmarks need 5 points, got {len(points)}")
    flat: list[float] = []
    for point in points:
        flat += [np.nan, np.nan] if point is None else [float(point[0]), float(point[1])]
    return flat


def drop_empty(records: list[FaceRecord], min_size: float = 0.0) -> list[FaceRecord]:
    """Remove faces smaller than ``min_size`` px and then images without faces (as SCRFD's dataset)."""
    kept = []
    for record in records:
        sizes = np.minimum(record.boxes[:, 2] - record.boxes[:, 0], record.boxes[:, 3] - record.boxes[:, 1])
        mask = sizes > min_size
        if mask.any():
            kept.append(FaceRecord(record.image_path, record.boxes[mask], record.landmarks[mask], record.landmark_valid[mask]))
    return kept
