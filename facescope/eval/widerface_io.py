"""WIDER FACE file formats of the evaluation: the official per-event prediction folder, plus the
ground-truth readers (defined in :mod:`facescope.data.wider_annotations`, shared with training, and
re-exported here).

Boxes stay in the files' own convention (``x, y, w, h`` floats); the evaluator applies the official
``x2 = x + w`` / "+1 area" rules. Every malformed line raises :class:`~facescope.errors.DataError`
naming ``file:line`` and the offending text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from facescope.data.wider_annotations import (  # noqa: F401 - re-exported: the evaluation's file formats
    ATTRIBUTE_NAMES,
    SUBSETS,
    VAL_GT_FILES,
    LabeledImage,
    WiderGroundTruth,
    WiderImage,
    format_number,
    read_retinaface_labels,
    read_wider_mat,
    read_wider_txt,
    write_retinaface_labels,
    write_wider_txt,
)
from facescope.errors import DataError
from facescope.fileio import atomic_write_text


def format_prediction_file(name: str, boxes_xywh: np.ndarray, scores: np.ndarray) -> str:
    """The official per-image text: name, count, then ``x y w h score`` per face.

    Values are written with 9 significant digits, so float32 detector outputs read back bit-exactly.
    """
    boxes_xywh = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes_xywh) != len(scores):
        raise ValueError(f"{len(boxes_xywh)} boxes but {len(scores)} scores")
    lines = [name, str(len(scores))]
    for box, score in zip(boxes_xywh, scores):
        lines.append(" ".join(format_number(v) for v in (*box, score)))
    return "\n".join(lines) + "\n"


def write_prediction_file(path: str | Path, name: str, boxes_xywh: np.ndarray, scores: np.ndarray) -> None:
    """Atomically write one official prediction file (see :func:`format_prediction_file`)."""
    atomic_write_text(Path(path), format_prediction_file(name, boxes_xywh, scores))


def parse_prediction_text(text: str, path: str | Path = "<text>") -> np.ndarray:
    """Parse one official prediction file -> ``ndarray[P, 5]`` float64 ``x, y, w, h, score``
    in file order.

    Rules: line 1 is the image name (not checked: the official MATLAB reader ignores it),
    line 2 the box count, then one box per line; extra columns after the fifth are ignored (as
    MATLAB does). A file with fewer than two non-blank lines (e.g. empty) has no boxes. Blank
    lines are skipped. A count that differs from the number of box lines, a non-numeric value, a
    line with fewer than 5 numbers or a non-finite value raises :class:`DataError`.
    """
    numbered = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if len(numbered) < 2:
        return np.zeros((0, 5), dtype=np.float64)
    count_number, count_text = numbered[1]
    try:
        count = int(count_text.strip())
    except ValueError:
        raise DataError(f"{path}:{count_number}: expected the number of boxes: '{count_text.strip()}'") from None
    body = numbered[2:]
    if count != len(body) or count < 0:
        raise DataError(f"{path}:{count_number}: the count says {count} boxes but {len(body)} box lines follow")
    if count == 0:
        return np.zeros((0, 5), dtype=np.float64)
    try:
        values = np.array(" ".join(line for _, line in body).split(), dtype=np.float64)
        if values.size == 5 * count and np.all(np.isfinite(values)):
            return values.reshape(count, 5)  # [P, 5]
    except ValueError:
        pass
    return _parse_prediction_lines(body, path)


def _parse_prediction_lines(body: list[tuple[int, str]], path: str | Path) -> np.ndarray:
    """Slow path: line-by-line, to accept extra columns and to name the first bad line."""
    rows = []
    for number, line in body:
        try:
            values = np.array(line.split(), dtype=np.float64)
        except ValueError:
            raise DataError(f"{path}:{number}: not a list of numbers: '{line.strip()}'") from None
        if values.size < 5:
            raise DataError(f"{path}:{number}: expected 'x y w h score', found {values.size} numbers: '{line.strip()}'")
        if not np.all(np.isfinite(values[:5])):
            raise DataError(f"{path}:{number}: non-finite value: '{line.strip()}'")
        rows.append(values[:5])
    return np.stack(rows).astype(np.float64)


def read_prediction_file(path: str | Path) -> np.ndarray:
    """Read one official prediction file; see :func:`parse_prediction_text`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise DataError(f"prediction file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from None
    return parse_prediction_text(text, path)


def prediction_path(root: str | Path, key: str) -> Path:
    """``<root>/<event>/<name>.txt`` for an image key ``"<event>/<name>"``."""
    return Path(root) / f"{key}.txt"


def read_prediction_folder(root: str | Path, keys: Iterable[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read ``<root>/<event>/<name>.txt`` for each image key.

    Returns:
        ``(predictions, missing)``: key -> ``ndarray[P, 5]`` ``x, y, w, h, score`` (file order)
        for the files that exist, and the keys whose file is absent.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"prediction folder not found: {root}")
    predictions: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for key in keys:
        path = prediction_path(root, key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            missing.append(key)
            continue
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not a text file ({exc})") from None
        predictions[key] = parse_prediction_text(text, path)
    return predictions, missing


def write_prediction_folder(root: str | Path, predictions: Mapping[str, np.ndarray]) -> None:
    """Write ``key -> ndarray[P, 5]`` (``x, y, w, h, score``) as an official prediction folder."""
    for key, table in predictions.items():
        table = np.asarray(table, dtype=np.float64).reshape(-1, 5)
        write_prediction_file(prediction_path(root, key), key.rsplit("/", 1)[-1], table[:, :4], table[:, 4])
