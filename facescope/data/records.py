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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

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
    """Read an annotation file; image paths are resolved against ``image_root``."""
    path, image_root = Path(path), Path(image_root)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    readers: dict[str, Callable[[Path, Path], list[FaceRecord]]] = {
        "retinaface": _read_hash_blocks_retinaface,
        "scrfd": _read_hash_blocks_scrfd,
        "wider": _read_wider_txt,
        "jsonl": _read_jsonl,
    }
    if format not in readers:
        raise DataError(f"unknown annotation format '{format}'; use one of {sorted(readers)}")
    return readers[format](path, image_root)


def _numbers(text: str, path: Path, line_no: int) -> list[float]:
    try:
        return [float(v) for v in text.split()]
    except ValueError:
        raise DataError(f"{path}:{line_no}: expected numbers, got '{text.strip()}'")


def _landmarks_from_triplets(values: list[float]) -> list[float] | None:
    """5 x (x, y, flag) -> 10 coordinates with NaN for missing points (x < 0 marks missing)."""
    if len(values) < 15:
        return None
    points = []
    for k in range(5):
        x, y = values[3 * k], values[3 * k + 1]
        points += [np.nan, np.nan] if x < 0 or y < 0 else [x, y]
    return None if all(np.isnan(points)) else points


def _hash_blocks(path: Path) -> Iterator[tuple[int, str, list[tuple[int, str]]]]:
    """Yield ``(line_no, header, [(line_no, face_line), ...])`` for ``# header`` blocks."""
    header, header_no, rows = None, 0, []
    with open(path) as f:
        for line_no, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                if header is not None:
                    yield header_no, header, rows
                header, header_no, rows = line[1:].strip(), line_no, []
            elif header is None:
                raise DataError(f"{path}:{line_no}: face line before any '# image' header: '{line}'")
            else:
                rows.append((line_no, line))
    if header is not None:
        yield header_no, header, rows


def _read_hash_blocks_retinaface(path: Path, image_root: Path) -> list[FaceRecord]:
    records = []
    for _, header, rows in _hash_blocks(path):
        faces = []
        for line_no, line in rows:
            values = _numbers(line, path, line_no)
            if len(values) < 4:
                raise DataError(f"{path}:{line_no}: a face needs at least 'x y w h', got '{line}'")
            x, y, w, h = values[:4]
            faces.append(([x, y, x + w, y + h], _landmarks_from_triplets(values[4:19])))
        records.append(FaceRecord.from_faces(image_root / header.split()[0], faces))
    return records


def _read_hash_blocks_scrfd(path: Path, image_root: Path) -> list[FaceRecord]:
    records = []
    for header_no, header, rows in _hash_blocks(path):
        if not header:
            raise DataError(f"{path}:{header_no}: empty image header")
        faces = []
        for line_no, line in rows:
            values = _numbers(line, path, line_no)
            if len(values) < 4:
                raise DataError(f"{path}:{line_no}: a face needs at least 'x1 y1 x2 y2', got '{line}'")
            faces.append((values[:4], _landmarks_from_triplets(values[4:19])))
        records.append(FaceRecord.from_faces(image_root / header.split()[0], faces))
    return records


def _read_wider_txt(path: Path, image_root: Path) -> list[FaceRecord]:
    lines = [(i, raw.strip()) for i, raw in enumerate(open(path), start=1)]
    lines = [(i, text) for i, text in lines if text]
    records, cursor = [], 0
    while cursor < len(lines):
        name_no, name = lines[cursor]
        if cursor + 1 >= len(lines):
            raise DataError(f"{path}:{name_no}: image '{name}' has no face count line")
        count_no, count_text = lines[cursor + 1]
        try:
            count = int(count_text)
        except ValueError:
            raise DataError(f"{path}:{count_no}: expected a face count, got '{count_text}'")
        rows = lines[cursor + 2 : cursor + 2 + max(count, 1)]
        faces = []
        for line_no, line in rows[:count]:
            values = _numbers(line, path, line_no)
            if len(values) < 4:
                raise DataError(f"{path}:{line_no}: a face needs 'x y w h ...', got '{line}'")
            x, y, w, h = values[:4]
            if w > 0 and h > 0:
                faces.append(([x, y, x + w, y + h], None))
        records.append(FaceRecord.from_faces(image_root / name, faces))
        cursor += 2 + max(count, 1)
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
