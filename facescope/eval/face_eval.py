"""AFW and PASCAL faces: VOC all-point AP with the ``face-eval`` conventions (Mathias et al.,
ECCV 2014; marcopede/face-eval), as documented in ``../shared/reference/dsfd_asfd_shf_eval.md`` §5.2.

* ground-truth faces narrower or lower than ``min_size`` (30 px), or flagged ignore in the
  re-annotated sets, are *ignored*; detections with width and height both <= ``int(sqrt(0.5 *
  min_size**2))`` (21 px) are dropped;
* all detections of the data set sorted by score; each takes the face of its image with the
  highest IoU ("+1" inclusive pixels): IoU > 0.5 with a free, non-ignored face -> TP; with an
  ignored face -> neither TP nor FP; with a taken face or IoU <= 0.5 -> FP;
* AP: VOC all-point (precision made monotone, area under the PR curve); the 11-point AP too;
* box calibration: ``calibration_rounds`` (5) evaluations; after each but the last, the mean
  relative offset ``((gx - dx) / dw, (gy - dy) / dh)`` and mean scale ``(gw / dw, gh / dh)`` of the
  TP pairs (centres and sizes) are applied to all detections. The AP of the last round is reported.

The face-eval source itself was not available here: sizes use the same "+1" pixel convention as
the IoU, and the calibration statistics are the plain means above. ``calibration_rounds=1``
gives plain VOC AP with the size rules; the S3FD-style ``ymin += 0.2 * height`` shift of
detector outputs is a detector-side convention (:func:`shift_box_tops`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facescope.eval.widerface import voc_ap
from facescope.ops.nms import pairwise_iou_numpy

MIN_FACE_SIZE = 30


@dataclass
class FaceEvalResult:
    """AP and PR curve of the last calibration round.

    Attributes:
        ap: VOC all-point AP. ap11: 11-point AP.
        precision, recall: ``ndarray[D]`` over the score-sorted detections (excluded ones removed).
        num_faces: non-ignored faces. transforms: the ``(tx, ty, sx, sy)`` applied after each round.
    """

    ap: float
    ap11: float
    precision: np.ndarray
    recall: np.ndarray
    num_faces: int
    transforms: list[tuple[float, float, float, float]] = field(default_factory=list)
    name: str = ""


def _sizes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1


def iou_inclusive(boxes: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``ndarray[D, 4] x ndarray[G, 4]`` x1y1x2y2 -> ``ndarray[D, G]`` IoU with "+1" widths."""
    return pairwise_iou_numpy(boxes, faces, pixel_offset=1.0)


def _label_detections(
    detections: list[tuple[str, float, np.ndarray]],
    faces: Mapping[str, np.ndarray],
    ignored: Mapping[str, np.ndarray],
    iou_threshold: float,
) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Labels in score order: 1 TP, 0 FP, -1 excluded; and the TP pairs (image, det row, face)."""
    labels = np.zeros(len(detections), dtype=np.int64)
    taken = {image: np.zeros(len(boxes), dtype=bool) for image, boxes in faces.items()}
    pairs = []
    for k, (image, _, box) in enumerate(detections):
        image_faces = faces.get(image, np.zeros((0, 4)))
        if len(image_faces) == 0:
            continue
        overlaps = iou_inclusive(box[None, :], image_faces)[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] <= iou_threshold:
            continue
        if ignored[image][best]:
            labels[k] = -1
        elif not taken[image][best]:
            taken[image][best] = True
            labels[k] = 1
            pairs.append((image, k, best))
    return labels, pairs


def ap_11_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point interpolated AP."""
    total = 0.0
    for t in np.linspace(0, 1, 11):
        above = precision[recall >= t]
        total += float(above.max()) if above.size else 0.0
    return total / 11


def _calibration(pairs: list[tuple[str, int, int]], boxes: np.ndarray, faces: Mapping[str, np.ndarray]) -> tuple[float, float, float, float]:
    """Mean relative centre offset and size ratio of the TP pairs."""
    if not pairs:
        return 0.0, 0.0, 1.0, 1.0
    det = boxes[[k for _, k, _ in pairs]]
    gt = np.stack([faces[image][g] for image, _, g in pairs])
    dw, dh = _sizes(det)
    gw, gh = _sizes(gt)
    dcx, dcy = (det[:, 0] + det[:, 2]) / 2, (det[:, 1] + det[:, 3]) / 2
    gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    return float(np.mean((gcx - dcx) / dw)), float(np.mean((gcy - dcy) / dh)), float(np.mean(gw / dw)), float(np.mean(gh / dh))


def _apply_calibration(boxes: np.ndarray, transform: tuple[float, float, float, float]) -> np.ndarray:
    tx, ty, sx, sy = transform
    w, h = _sizes(boxes)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + tx * w, (boxes[:, 1] + boxes[:, 3]) / 2 + ty * h
    w, h = w * sx, h * sy
    return np.stack([cx - (w - 1) / 2, cy - (h - 1) / 2, cx + (w - 1) / 2, cy + (h - 1) / 2], axis=1)


def evaluate_face_ap(
    faces: Mapping[str, np.ndarray],
    detections: Mapping[str, np.ndarray],
    *,
    ignore: Mapping[str, np.ndarray] | None = None,
    min_size: int = MIN_FACE_SIZE,
    calibration_rounds: int = 5,
    iou_threshold: float = 0.5,
    name: str = "",
) -> FaceEvalResult:
    """AFW / PASCAL faces AP.

    Args:
        faces: image id -> ``ndarray[G, 4]`` x1 y1 x2 y2 ground truth.
        detections: image id -> ``ndarray[N, 5]`` x1 y1 x2 y2 score.
        ignore: image id -> ``ndarray[G]`` bool ignore flags of the annotation (optional).
        min_size: faces below it are ignored; detections up to ``int(sqrt(0.5 min_size^2))`` dropped.
        calibration_rounds: evaluations with box calibration in between (1 = none).
    """
    min_pixels = int(math.sqrt(0.5 * min_size * min_size))
    ignored = {}
    for image, boxes in faces.items():
        w, h = _sizes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        flag = np.asarray(ignore.get(image, np.zeros(len(w), bool)) if ignore else np.zeros(len(w), bool), dtype=bool)
        ignored[image] = flag | (w < min_size) | (h < min_size)
    faces = {k: np.asarray(v, dtype=np.float64).reshape(-1, 4) for k, v in faces.items()}
    rows = []
    for image, table in detections.items():
        for row in np.asarray(table, dtype=np.float64).reshape(-1, 5):
            w, h = _sizes(row[None, :4])
            if not (w[0] <= min_pixels and h[0] <= min_pixels):
                rows.append((image, float(row[4]), row[:4].copy()))
    rows.sort(key=lambda r: -r[1])  # stable: ties keep input order
    num_faces = int(sum(int((~flags).sum()) for flags in ignored.values()))
    boxes = np.array([r[2] for r in rows]).reshape(-1, 4)
    transforms = []
    for round_index in range(max(calibration_rounds, 1)):
        current = [(image, score, boxes[k]) for k, (image, score, _) in enumerate(rows)]
        labels, pairs = _label_detections(current, faces, ignored, iou_threshold)
        if round_index < calibration_rounds - 1:
            transforms.append(_calibration(pairs, boxes, faces))
            boxes = _apply_calibration(boxes, transforms[-1])
    kept = labels >= 0
    tp = np.cumsum(labels[kept] == 1)
    fp = np.cumsum(labels[kept] == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / np.maximum(tp + fp, 1)
        recall = tp / num_faces if num_faces else np.full(len(tp), np.nan)
    return FaceEvalResult(voc_ap(recall, precision), ap_11_point(recall, precision), precision, recall, num_faces, transforms, name)


def shift_box_tops(boxes_xyxy: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """S3FD/SHF convention before writing AFW/PASCAL results: ``y1 += fraction * (y2 - y1 + 1)``
    ("WIDER boxes are longer than AFW boxes"). Returns a copy."""
    out = np.array(boxes_xyxy, dtype=np.float64, copy=True)
    out[:, 1] += fraction * (out[:, 3] - out[:, 1] + 1)
    return out


def read_face_eval_detections(path: str) -> dict[str, np.ndarray]:
    """face-eval detection file: one ``image_id score x1 y1 x2 y2`` per line -> id -> ``[N, 5]``
    ``x1 y1 x2 y2 score``."""
    from facescope.errors import DataError

    result: dict[str, list[list[float]]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 6:
                raise ValueError
            score, x1, y1, x2, y2 = (float(v) for v in parts[1:6])
        except ValueError:
            raise DataError(f"{path}:{number}: expected 'image_id score x1 y1 x2 y2': '{line.strip()}'") from None
        result.setdefault(parts[0], []).append([x1, y1, x2, y2, score])
    return {k: np.array(v, dtype=np.float64).reshape(-1, 5) for k, v in result.items()}


def read_face_eval_annotations(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The published AFW / PASCAL faces ground truth of face-eval (``new_annotations_AFW.mat``,
    ``Annotations_Face_PASCALLayout_large_fixed.mat``): a MATLAB struct array ``Annotations`` with
    ``imgname`` (``"name.jpg"``) and ``objects`` (one row per face: ``x1 y1 x2 y2`` and, in the
    re-annotated sets, two more columns, the 6th being the ignore flag).

    Returns:
        ``(faces, ignore)``: image id (the name without extension, as in detection files) ->
        ``ndarray[G, 4]`` x1 y1 x2 y2, and -> ``ndarray[G]`` bool ignore flags.
    """
    import scipy.io

    from facescope.errors import DataError

    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read a MATLAB annotation file: {exc}") from None
    if "Annotations" not in mat:
        raise DataError(f"{path}: no 'Annotations' struct array (the face-eval AFW / PASCAL layout); found {sorted(k for k in mat if not k.startswith('__'))}")
    faces: dict[str, np.ndarray] = {}
    ignore: dict[str, np.ndarray] = {}
    for index, record in enumerate(np.atleast_1d(mat["Annotations"]), start=1):
        try:
            name, objects = str(record.imgname), np.asarray(record.objects, dtype=np.float64)
        except (AttributeError, ValueError):
            raise DataError(f"{path}: annotation {index} lacks a string 'imgname' and numeric 'objects'") from None
        rows = objects.reshape(-1, objects.shape[-1]) if objects.size else np.zeros((0, 4))
        if rows.shape[1] < 4:
            raise DataError(f"{path}: annotation {index} ({name}): objects need >= 4 columns x1 y1 x2 y2, got {rows.shape[1]}")
        key = Path(name).stem
        faces[key] = rows[:, :4]
        ignore[key] = rows[:, 5] != 0 if rows.shape[1] >= 6 else np.zeros(len(rows), dtype=bool)
    return faces, ignore


def write_face_eval_detections(path: str | Path, detections: Mapping[str, np.ndarray]) -> None:
    """Write ``image_id -> [N, 5] x1 y1 x2 y2 score`` as face-eval lines ``image_id score x1 y1 x2 y2`` (atomically)."""
    from facescope.fileio import atomic_write_text

    lines = [
        f"{image} {row[4]:.6f} {row[0]:.2f} {row[1]:.2f} {row[2]:.2f} {row[3]:.2f}"
        for image, table in detections.items()
        for row in np.asarray(table, dtype=np.float64).reshape(-1, 5)
    ]
    atomic_write_text(Path(path), "\n".join(lines) + ("\n" if lines else ""))
