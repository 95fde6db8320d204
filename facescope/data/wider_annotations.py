"""WIDER FACE ground-truth files: the official ``.mat`` files and ``wider_face_*_bbx_gt.txt``, and the
RetinaFace/SCRFD ``label.txt`` / ``labelv2.txt`` layout.

One set of readers for training (:mod:`facescope.data.records`) and evaluation
(:mod:`facescope.eval`). Boxes stay in the files' own convention here (``x, y, w, h`` floats for WIDER
ground truth); the evaluator applies the official ``x2 = x + w`` / "+1 area" rules. Every malformed
line raises :class:`~facescope.errors.DataError` naming ``file:line`` and the offending text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facescope.errors import DataError
from facescope.fileio import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from facescope.structures import FaceTargets

SUBSETS: tuple[str, ...] = ("easy", "medium", "hard")
ATTRIBUTE_NAMES: tuple[str, ...] = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
_MAT_ATTRIBUTE_KEYS = tuple(f"{name}_label_list" for name in ATTRIBUTE_NAMES)
VAL_GT_FILES: dict[str, str] = {
    "face": "wider_face_val.mat",
    "easy": "wider_easy_val.mat",
    "medium": "wider_medium_val.mat",
    "hard": "wider_hard_val.mat",
}


@dataclass
class WiderImage:
    """Ground truth of one WIDER FACE image.

    Args:
        event: event folder, e.g. ``"0--Parade"``.
        name: image name without extension, e.g. ``"0_Parade_marchingband_1_465"``.
        boxes: ``ndarray[G, 4]`` float64 ``x, y, w, h`` as in the official files.
        attributes: ``ndarray[G, 6]`` int (blur, expression, illumination, invalid, occlusion, pose)
            or None when the source has none.
    """

    event: str
    name: str
    boxes: np.ndarray
    attributes: np.ndarray | None = None

    @property
    def key(self) -> str:
        """``"<event>/<name>"``: the image's identity everywhere in facescope.eval."""
        return f"{self.event}/{self.name}"


@dataclass
class WiderGroundTruth:
    """The faces of a WIDER FACE split plus the easy/medium/hard keep lists.

    Args:
        images: in official order (event by event, as in ``wider_face_val.mat``).
        keep: subset name -> per image ``ndarray[K]`` int64 **0-based** indices of the faces that
            count for that subset (the .mat files store 1-based indices; converted on reading).
            Empty when the source has no keep lists (txt files).
        source: where it was read from (for messages).
        split_size: number of images of the whole split this ground truth was cut from
            (None = this is the whole split). Lets results say "38 of 3226 images".
    """

    images: list[WiderImage]
    keep: dict[str, list[np.ndarray]] = field(default_factory=dict)
    source: str = ""
    split_size: int | None = None

    @property
    def is_restricted(self) -> bool:
        """True when this is a part of a larger split (see :meth:`restrict_to`)."""
        return self.split_size is not None and self.split_size > len(self.images)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def keys(self) -> list[str]:
        return [image.key for image in self.images]

    @property
    def num_faces(self) -> int:
        return int(sum(len(image.boxes) for image in self.images))

    def restrict_to(self, keys: Iterable[str]) -> WiderGroundTruth:
        """The same ground truth limited to the images in ``keys`` (official order kept)."""
        wanted = set(keys)
        unknown = wanted.difference(self.keys)
        if unknown:
            example = sorted(unknown)[0]
            raise DataError(f"{len(unknown)} image(s) are not in the ground truth {self.source}, e.g. '{example}'")
        chosen = [i for i, image in enumerate(self.images) if image.key in wanted]
        keep = {subset: [lists[i] for i in chosen] for subset, lists in self.keep.items()}
        split_size = self.split_size if self.split_size is not None else len(self.images)
        return WiderGroundTruth([self.images[i] for i in chosen], keep, self.source, split_size)


# --------------------------------------------------------------------------------------------------
# official .mat ground truth


def _cell_strings(cell: np.ndarray) -> list[str]:
    """A MATLAB cell column of strings (loaded by scipy as nested object arrays) -> list[str]."""
    return [str(np.asarray(item).ravel()[0]) for item in np.asarray(cell).ravel()]


def _load_mat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import scipy.io

    if not path.is_file():
        raise DataError(f"ground-truth file not found: {path}")
    try:
        data = scipy.io.loadmat(str(path), variable_names=names)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    missing = [name for name in names if name not in data]
    if missing:
        raise DataError(f"{path}: variable(s) {', '.join(missing)} missing; is this an official WIDER FACE .mat file?")
    return data


def read_wider_mat(gt_dir: str | Path, split: str = "val", with_attributes: bool = True) -> WiderGroundTruth:
    """Read the official ground truth: ``wider_face_<split>.mat`` plus, when present, the three
    ``wider_{easy,medium,hard}_<split>.mat`` keep lists.

    Args:
        gt_dir: folder holding the official files.
        split: ``"val"`` (the only split with public keep lists).
        with_attributes: also read the six attribute lists.
    """
    gt_dir = Path(gt_dir)
    names = ["event_list", "file_list", "face_bbx_list"] + (list(_MAT_ATTRIBUTE_KEYS) if with_attributes else [])
    face_path = gt_dir / f"wider_face_{split}.mat"
    data = _load_mat(face_path, names)
    events = _cell_strings(data["event_list"])
    images: list[WiderImage] = []
    for e, event in enumerate(events):
        files = _cell_strings(data["file_list"][e, 0])
        boxes_cell = np.asarray(data["face_bbx_list"][e, 0]).ravel()
        attribute_cells = [np.asarray(data[k][e, 0]).ravel() for k in _MAT_ATTRIBUTE_KEYS] if with_attributes else []
        for j, name in enumerate(files):
            boxes = np.asarray(boxes_cell[j], dtype=np.float64).reshape(-1, 4)
            attributes = None
            if with_attributes:
                columns = [np.asarray(cell[j]).reshape(-1) for cell in attribute_cells]
                attributes = np.stack(columns, axis=1).astype(np.int64).reshape(-1, 6)  # [G, 6]
            images.append(WiderImage(event, name, boxes, attributes))
    gt = WiderGroundTruth(images, {}, str(gt_dir))
    for subset in SUBSETS:
        path = gt_dir / f"wider_{subset}_{split}.mat"
        if path.is_file():
            gt.keep[subset] = _read_keep_lists(path, gt)
    return gt


def _read_keep_lists(path: Path, gt: WiderGroundTruth) -> list[np.ndarray]:
    """``gt_list`` of a subset .mat file -> per image 0-based index arrays, validated."""
    cells = _load_mat(path, ["gt_list"])["gt_list"]
    flat: list[np.ndarray] = []
    for e in range(cells.shape[0]):
        flat.extend(np.asarray(item).reshape(-1) for item in np.asarray(cells[e, 0]).ravel())
    if len(flat) != len(gt.images):
        raise DataError(f"{path}: keep lists for {len(flat)} images, but the ground truth has {len(gt.images)}")
    keep: list[np.ndarray] = []
    for image, indices in zip(gt.images, flat):
        one_based = indices.astype(np.int64)
        bad = one_based[(one_based < 1) | (one_based > len(image.boxes))]
        if bad.size:
            raise DataError(
                f"{path}: image {image.key}: keep index {int(bad[0])} outside 1..{len(image.boxes)} "
                "(keep lists are 1-based face indices)"
            )
        keep.append(one_based - 1)
    return keep


# --------------------------------------------------------------------------------------------------
# text ground truth


class _LineReader:
    """Numbered lines of a text file, for error messages naming ``file:line``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DataError(f"file not found: {path}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not a UTF-8 text file ({exc})") from None
        self.index = 0

    def at_end(self) -> bool:
        while self.index < len(self.lines) and not self.lines[self.index].strip():
            self.index += 1
        return self.index >= len(self.lines)

    def next(self, what: str) -> tuple[int, str]:
        """``(1-based line number, stripped text)`` of the next non-blank line."""
        if self.at_end():
            raise DataError(f"{self.path}:{len(self.lines) + 1}: unexpected end of file, expected {what}")
        self.index += 1
        return self.index, self.lines[self.index - 1].strip()

    def peek(self) -> str | None:
        return None if self.at_end() else self.lines[self.index].strip()

    def error(self, number: int, text: str, problem: str) -> DataError:
        return DataError(f"{self.path}:{number}: {problem}: '{text}'")


def _parse_numbers(reader: _LineReader, number: int, text: str, counts: tuple[int, ...]) -> np.ndarray:
    """Parse a whitespace-separated line of floats with one of the allowed column counts."""
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise reader.error(number, text, "not a list of numbers") from None
    if len(values) not in counts:
        allowed = " or ".join(str(c) for c in counts)
        raise reader.error(number, text, f"expected {allowed} numbers, found {len(values)}")
    if not np.all(np.isfinite(values)):
        raise reader.error(number, text, "non-finite value")
    return values


def _parse_count(reader: _LineReader, number: int, text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise reader.error(number, text, "expected a face count") from None
    if count < 0:
        raise reader.error(number, text, "negative face count")
    return count


def _split_image_path(reader: _LineReader, number: int, text: str) -> tuple[str, str]:
    """``"0--Parade/0_Parade_x.jpg"`` -> ``("0--Parade", "0_Parade_x")``."""
    path = text.replace("\\", "/")
    path = path[2:] if path.startswith("./") else path
    if "/" not in path:
        raise reader.error(number, text, "expected '<event>/<image>.jpg'")
    event, filename = path.rsplit("/", 1)
    return event.split("/")[-1], os.path.splitext(filename)[0]


def read_wider_txt(path: str | Path) -> WiderGroundTruth:
    """Read an official ``wider_face_{train,val}_bbx_gt.txt``: per image the path line, the face
    count, then ``x y w h blur expression illumination invalid occlusion pose`` per face.

    Images with no face carry one all-zero line in the official files; it is skipped. The result
    has no keep lists (those exist only in the .mat files).
    """
    reader = _LineReader(Path(path))
    images: list[WiderImage] = []
    while not reader.at_end():
        number, text = reader.next("an image path")
        event, name = _split_image_path(reader, number, text)
        count_number, count_text = reader.next("a face count")
        count = _parse_count(reader, count_number, count_text)
        rows = [_parse_numbers(reader, *reader.next(f"face {i + 1} of {count}"), (10,)) for i in range(count)]
        if count == 0 and _is_zero_face_line(reader.peek()):
            reader.next("the empty-image line")
        table = np.array(rows, dtype=np.float64).reshape(-1, 10)  # [G, 10]
        images.append(WiderImage(event, name, table[:, :4].copy(), table[:, 4:].astype(np.int64)))
    return WiderGroundTruth(images, {}, str(path))


def _is_zero_face_line(text: str | None) -> bool:
    if text is None:
        return False
    parts = text.split()
    return len(parts) == 10 and all(p.lstrip("-").replace(".", "", 1).isdigit() and float(p) == 0 for p in parts)


def write_wider_txt(gt: WiderGroundTruth, path: str | Path) -> None:
    """Write ground truth in the official ``bbx_gt.txt`` layout (missing attributes become 0)."""
    lines: list[str] = []
    for image in gt.images:
        lines += [f"{image.key}.jpg", str(len(image.boxes))]
        attributes = image.attributes if image.attributes is not None else np.zeros((len(image.boxes), 6), np.int64)
        for box, attribute in zip(image.boxes, attributes):
            lines.append(" ".join(format_number(v) for v in box) + " " + " ".join(str(int(a)) for a in attribute) + " ")
        if len(image.boxes) == 0:
            lines.append("0 0 0 0 0 0 0 0 0 0 ")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


@dataclass
class LabeledImage:
    """One image of a RetinaFace/SCRFD ``label.txt``.

    Args:
        path: image path relative to the label file's image root, e.g. ``"0--Parade/x.jpg"``.
        boxes: ``ndarray[M, 4]`` float64 ``x1, y1, x2, y2``.
        landmarks: ``ndarray[M, 5, 2]`` float64 (0 where missing).
        landmark_valid: ``ndarray[M, 5]`` bool, False where the point is the ``-1 -1`` marker or
            the file has no landmarks.
        size: ``(width, height)`` from a labelv2 header, else None.
    """

    path: str
    boxes: np.ndarray
    landmarks: np.ndarray
    landmark_valid: np.ndarray
    size: tuple[int, int] | None = None

    def to_face_targets(self) -> FaceTargets:
        """As :class:`facescope.structures.FaceTargets` (float32 tensors)."""
        import torch

        from facescope.structures import FaceTargets

        return FaceTargets(
            torch.as_tensor(self.boxes, dtype=torch.float32),
            torch.as_tensor(self.landmarks, dtype=torch.float32),
            torch.as_tensor(self.landmark_valid, dtype=torch.bool),
        )


def read_retinaface_labels(path: str | Path, box_format: str | None = None) -> list[LabeledImage]:
    """Read a RetinaFace-style ``label.txt``.

    Layout: ``# <image path> [<width> <height>]`` then one line per face:
    ``x y w h`` (4 numbers), optionally followed by 5 landmarks as ``x y flag`` triples
    (19 numbers) and a trailing score (20 numbers, the Pytorch_Retinaface train file).
    A landmark ``-1 -1`` marks a missing point; the 0/1 visibility flag is read but not used
    for validity (as SCRFD does).

    Args:
        box_format: ``"xywh"`` (Pytorch_Retinaface ``label.txt``) or ``"xyxy"`` (SCRFD
            ``labelv2.txt``). Default: ``"xyxy"`` when the header carries a width and height
            (the labelv2 signature), else ``"xywh"``.
    """
    reader = _LineReader(Path(path))
    images: list[LabeledImage] = []
    while not reader.at_end():
        number, text = reader.next("a '# <image path>' line")
        if not text.startswith("#"):
            raise reader.error(number, text, "expected a '# <image path>' header line")
        image_path, size = _parse_label_header(reader, number, text)
        rows = []
        while (peek := reader.peek()) is not None and not peek.startswith("#"):
            rows.append(_parse_numbers(reader, *reader.next("a face"), (4, 19, 20)))
        fmt = box_format or ("xyxy" if size is not None else "xywh")
        images.append(_labeled_image(image_path, rows, fmt, size))
    return images


def _parse_label_header(reader: _LineReader, number: int, text: str) -> tuple[str, tuple[int, int] | None]:
    parts = text[1:].split()
    if not parts:
        raise reader.error(number, text, "header without an image path")
    if len(parts) == 3:
        try:
            return parts[0], (int(parts[1]), int(parts[2]))
        except ValueError:
            raise reader.error(number, text, "expected '# <path> <width> <height>'") from None
    if len(parts) != 1:
        raise reader.error(number, text, "expected '# <path>' or '# <path> <width> <height>'")
    return parts[0], None


def _labeled_image(path: str, rows: list[np.ndarray], box_format: str, size: tuple[int, int] | None) -> LabeledImage:
    num = len(rows)
    boxes = np.array([r[:4] for r in rows], dtype=np.float64).reshape(num, 4)
    if box_format == "xywh":
        boxes[:, 2:] += boxes[:, :2]
    elif box_format != "xyxy":
        raise DataError(f"box_format must be 'xywh' or 'xyxy', got '{box_format}'")
    landmarks = np.zeros((num, 5, 2), dtype=np.float64)
    valid = np.zeros((num, 5), dtype=bool)
    for i, row in enumerate(rows):
        if len(row) >= 19:
            points = row[4:19].reshape(5, 3)[:, :2]  # (x, y, flag) triples -> [5, 2]
            missing = np.all(points == -1.0, axis=1)
            landmarks[i] = np.where(missing[:, None], 0.0, points)
            valid[i] = ~missing
    return LabeledImage(path, boxes, landmarks, valid, size)


def write_retinaface_labels(images: Iterable[LabeledImage], path: str | Path, box_format: str = "xywh") -> None:
    """Write a ``label.txt`` (``xywh`` + 5 ``x y 1.0`` landmarks, ``-1`` for missing) that
    :func:`read_retinaface_labels` reads back."""
    lines: list[str] = []
    for image in images:
        header = f"# {image.path}" + (f" {image.size[0]} {image.size[1]}" if image.size and box_format == "xyxy" else "")
        lines.append(header)
        for box, points, valid in zip(image.boxes, image.landmarks, image.landmark_valid):
            x1, y1, x2, y2 = box
            coords = [x1, y1, x2 - x1, y2 - y1] if box_format == "xywh" else [x1, y1, x2, y2]
            values = [format_number(v) for v in coords]
            if valid.any():
                for (x, y), ok in zip(points, valid):
                    values += [format_number(x), format_number(y), "1.0"] if ok else ["-1.0", "-1.0", "-1.0"]
            lines.append(" ".join(values))
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def format_number(value: float) -> str:
    """Shortest text that reads back to the same float32 (9 significant digits)."""
    return f"{float(value):.9g}"
