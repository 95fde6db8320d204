"""FDDB evaluation: the official ``evaluate`` program (Jain & Learned-Miller) in numpy + OpenCV.

Protocol (``evaluate.cpp``, ``Matching.cpp``, ``Results.cpp`` of the FDDB release):

* ground truth: ellipses ``ra rb theta cx cy 1`` per face; detections: rectangles
  ``left top width height score`` (``-f 0``) or ellipses ``ra rb theta cx cy score`` (``-f 1``);
* both are rasterised, filled, on the image grid (OpenCV: centre and rectangle corners rounded
  after a float32 cast, ellipse axes truncated to int, ellipse angle ``theta`` in degrees rounded to
  an int, masks clipped to the image); the pair score is the **pixel IoU** of the two masks;
* per image and per unique detection score ``t`` (detections with score >= t are valid), a
  maximum-weight one-to-one matching (Hungarian); matched pairs with IoU > 0 count:
  discrete TP = #pairs with IoU > 0.5, continuous TP = sum of IoUs, FP = #valid - discrete TP;
* images are merged over the union of all thresholds (an image contributes its statistics at its
  smallest own threshold >= t, nothing above its highest score, and only its face count when it
  has no detection); TPR = TP / #faces. ``DiscROC.txt`` rows: ``TPR FP threshold``,
  ``ContROC.txt``: ``TPR FP``, in ascending threshold order.

The reported number is the TPR at 1000 false positives: the first ROC row (ascending threshold)
whose FP count is below 1000, the convention of SHF's script.

Ties in the maximum-weight matching may be broken differently from the original C Hungarian
code (same total IoU, possibly a different discrete count); this only happens with exactly equal
pair IoUs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facescope.errors import DataError
from facescope.fileio import atomic_write_text

DBL_MAX = float(np.finfo(np.float64).max)
REGION_VALUE = 10  # REGION_MASK_VALUE of the official code


# --------------------------------------------------------------------------------------------------
# files


def read_fddb_fold(path: str | Path) -> list[str]:
    """``FDDB-fold-XX.txt``: one image name per line (e.g. ``2002/08/11/big/img_591``)."""
    path = Path(path)
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataError(f"FDDB fold file not found: {path}") from None


def _read_region_blocks(path: Path, columns: int, what: str) -> dict[str, np.ndarray]:
    """Blocks of ``name``, ``count``, ``count`` lines of ``columns`` numbers -> name -> array."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"FDDB {what} file not found: {path}") from None
    blocks: dict[str, np.ndarray] = {}
    i = 0
    while i < len(lines):
        name = lines[i].strip()
        i += 1
        if not name:
            continue
        if i >= len(lines):
            raise DataError(f"{path}:{i + 1}: unexpected end of file, expected the number of regions of '{name}'")
        try:
            count = int(lines[i].strip())
        except ValueError:
            raise DataError(f"{path}:{i + 1}: expected the number of regions of '{name}': '{lines[i].strip()}'") from None
        if count < 0:
            raise DataError(f"{path}:{i + 1}: negative region count: '{lines[i].strip()}'")
        rows = []
        for k in range(count):
            number = i + 2 + k
            if number > len(lines):
                raise DataError(f"{path}:{number}: unexpected end of file, expected region {k + 1} of {count} of '{name}'")
            rows.append(_parse_region_line(path, number, lines[number - 1], columns))
        blocks[name] = np.array(rows, dtype=np.float64).reshape(count, columns)
        i += 1 + count
    return blocks


def _parse_region_line(path: Path, number: int, line: str, columns: int) -> np.ndarray:
    try:
        values = np.array(line.split(), dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}:{number}: not a list of numbers: '{line.strip()}'") from None
    if values.size < columns:
        raise DataError(f"{path}:{number}: expected {columns} numbers, found {values.size}: '{line.strip()}'")
    if not np.all(np.isfinite(values[:columns])):
        raise DataError(f"{path}:{number}: non-finite value: '{line.strip()}'")
    return values[:columns]


def read_fddb_ellipses(path: str | Path) -> dict[str, np.ndarray]:
    """``FDDB-fold-XX-ellipseList.txt`` (or a folder of them, merged in fold order) ->
    image name -> ``ndarray[K, 5]`` ``major_radius minor_radius angle(rad) center_x center_y``."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("FDDB-fold-*-ellipseList.txt"))
        if not files:
            raise DataError(f"no FDDB-fold-XX-ellipseList.txt in {path}")
        merged: dict[str, np.ndarray] = {}
        for file in files:
            merged.update(_read_region_blocks(file, 5, "ellipse"))
        return merged
    return _read_region_blocks(path, 5, "ellipse")


def read_fddb_detections(path: str | Path, kind: str = "rect") -> dict[str, np.ndarray]:
    """An FDDB detection file -> image name -> ``ndarray[N, 5]`` ``left top width height score``
    (``kind="rect"``, ``-f 0``) or ``ndarray[N, 6]`` ``ra rb angle cx cy score`` (``"ellipse"``)."""
    columns = {"rect": 5, "ellipse": 6}.get(kind)
    if columns is None:
        raise ValueError(f"kind must be 'rect' or 'ellipse', got {kind!r}")
    return _read_region_blocks(Path(path), columns, "detection")


def write_fddb_detections(path: str | Path, detections: Mapping[str, np.ndarray], order: Sequence[str]) -> None:
    """Write detections (name -> ``ndarray[N, 5 or 6]``) in the FDDB layout, images in ``order``."""
    lines: list[str] = []
    for name in order:
        table = np.asarray(detections.get(name, np.zeros((0, 5))), dtype=np.float64)
        lines += [name, str(len(table))]
        lines += [" ".join(f"{v:.9g}" for v in row) for row in table]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------------
# rasterisation (as the official OpenCV calls draw them)


def _cv_round_point(x: float, y: float) -> tuple[int, int]:
    """``cvPointFrom32f(cvPoint2D32f(x, y))``: float32 cast, then round half to even."""
    return int(np.rint(np.float32(x))), int(np.rint(np.float32(y)))


def ellipse_mask(ellipse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled ellipse ``ra rb angle(rad) cx cy`` -> ``ndarray[H, W]`` bool, drawn like ``EllipseR``."""
    import cv2

    ra, rb, theta, cx, cy = (float(v) for v in ellipse[:5])
    degrees = (math.pi - theta) * 180.0 / math.pi  # EllipsesSingleImage::read
    mask = np.zeros((height, width), dtype=np.uint8)
    axes = (max(int(ra), 0), max(int(rb), 0))  # cvSize((int) ra, (int) rb)
    cv2.ellipse(mask, _cv_round_point(cx, cy), axes, 180.0 - degrees, 0, 360, REGION_VALUE, -1)  # EllipseR::display
    return mask > 0


def rectangle_mask(rect: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled rectangle ``left top width height`` -> ``ndarray[H, W]`` bool, drawn like ``RectangleR``."""
    import cv2

    x, y, w, h = (float(v) for v in rect[:4])
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.rectangle(mask, _cv_round_point(x, y), _cv_round_point(x + w, y + h), REGION_VALUE, -1)
    return mask > 0


def rectangle_extent(rect: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` half-open pixel bounds of :func:`rectangle_mask`, without drawing it
    (corners rounded, inclusive, in either order, clipped to the image; empty when outside)."""
    x_a, y_a = _cv_round_point(rect[0], rect[1])
    x_b, y_b = _cv_round_point(rect[0] + rect[2], rect[1] + rect[3])
    x0, x1 = max(min(x_a, x_b), 0), min(max(x_a, x_b) + 1, width)
    y0, y1 = max(min(y_a, y_b), 0), min(max(y_a, y_b) + 1, height)
    return (y0, y1, x0, x1) if x0 < x1 and y0 < y1 else (0, 0, 0, 0)


def rectangle_iou_matrix(gt_masks: Sequence[np.ndarray], rects: np.ndarray) -> np.ndarray:
    """``ndarray[G, D]`` pixel IoU of filled masks with filled rectangles ``left top width height``,
    equal to :func:`pixel_iou_matrix` on the drawn rectangles but O(1) per pair (integral images)."""
    import cv2

    if len(gt_masks) == 0 or len(rects) == 0:
        return np.zeros((len(gt_masks), len(rects)), dtype=np.float64)
    height, width = gt_masks[0].shape
    extents = np.array([rectangle_extent(r, height, width) for r in rects], dtype=np.int64)  # [D, 4]
    y0, y1, x0, x1 = extents.T
    rect_area = (y1 - y0) * (x1 - x0)  # [D]
    scores = np.zeros((len(gt_masks), len(rects)), dtype=np.float64)
    for g, mask in enumerate(gt_masks):
        top, bottom, left, right = _mask_extent(mask)
        crop = np.ascontiguousarray(mask[top:bottom, left:right], dtype=np.uint8)
        integral = cv2.integral(crop).astype(np.int64) if crop.size else np.zeros((1, 1), np.int64)  # [h+1, w+1]
        cy0, cy1 = np.clip(y0 - top, 0, crop.shape[0]), np.clip(y1 - top, 0, crop.shape[0])  # rect in crop coordinates
        cx0, cx1 = np.clip(x0 - left, 0, crop.shape[1]), np.clip(x1 - left, 0, crop.shape[1])
        inter = integral[cy1, cx1] - integral[cy0, cx1] - integral[cy1, cx0] + integral[cy0, cx0]  # [D]
        union = int(integral[-1, -1]) + rect_area - inter
        scores[g] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return scores


def pixel_iou_matrix(gt_masks: Sequence[np.ndarray], det_masks: Sequence[np.ndarray]) -> np.ndarray:
    """``ndarray[G, D]`` pixel IoU of filled masks (0 where the union is empty)."""
    scores = np.zeros((len(gt_masks), len(det_masks)), dtype=np.float64)
    boxes = [_mask_extent(m) for m in det_masks]
    for g, gt_mask in enumerate(gt_masks):
        gt_area = int(gt_mask.sum())
        gt_box = _mask_extent(gt_mask)
        for d, det_mask in enumerate(det_masks):
            y0, y1 = max(gt_box[0], boxes[d][0]), min(gt_box[1], boxes[d][1])
            x0, x1 = max(gt_box[2], boxes[d][2]), min(gt_box[3], boxes[d][3])
            inter = int(np.count_nonzero(gt_mask[y0:y1, x0:x1] & det_mask[y0:y1, x0:x1])) if y0 < y1 and x0 < x1 else 0
            union = gt_area + int(det_mask.sum()) - inter
            scores[g, d] = inter / union if union > 0 else 0.0
    return scores


def _mask_extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` half-open bounds of the True pixels ((0, 0, 0, 0) when empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# --------------------------------------------------------------------------------------------------
# matching and the ROC


@dataclass
class ImageROC:
    """Statistics of one image at each of its unique detection scores (ascending).

    ``thresholds[k]``: score; ``tp_discrete``, ``tp_continuous``, ``false_positives`` with the
    detections scoring >= ``thresholds[k]``; an image without detections has the single threshold
    ``DBL_MAX`` with zeros. ``num_faces``: annotated faces.
    """

    thresholds: np.ndarray
    tp_discrete: np.ndarray
    tp_continuous: np.ndarray
    false_positives: np.ndarray
    num_faces: int


def match_at_threshold(scores: np.ndarray, valid: np.ndarray) -> tuple[int, float, int]:
    """Maximum-weight one-to-one matching of faces to valid detections.

    Args:
        scores: ``ndarray[G, D]`` pair IoUs.
        valid: ``ndarray[D]`` bool, detections taking part.

    Returns:
        ``(discrete TP (IoU > 0.5), continuous TP (sum of matched IoU > 0), FP)``.
    """
    from scipy.optimize import linear_sum_assignment

    num_valid = int(valid.sum())
    sub = scores[:, valid]
    if sub.size == 0 or not np.any(sub > 0):
        return 0, 0.0, num_valid
    rows, cols = linear_sum_assignment(sub, maximize=True)
    matched = sub[rows, cols]
    matched = matched[matched > 0]
    discrete = int(np.count_nonzero(matched > 0.5))
    return discrete, float(matched.sum()), num_valid - discrete


def image_roc(scores: np.ndarray, det_scores: np.ndarray) -> ImageROC:
    """The per-threshold statistics of one image from its ``ndarray[G, D]`` pair IoUs."""
    num_faces = scores.shape[0]
    if len(det_scores) == 0:
        zero = np.zeros(1)
        return ImageROC(np.array([DBL_MAX]), zero, zero.copy(), zero.copy(), num_faces)
    thresholds = np.unique(det_scores)  # ascending
    # Detections overlapping no face never change the matching, so it is recomputed only when the set
    # of valid overlapping detections changes (those sets are nested: keyed by their size).
    overlapping = (scores > 0).any(axis=0) if num_faces else np.zeros(len(det_scores), dtype=bool)
    matchings: dict[int, tuple[int, float]] = {}
    rows = []
    for t in thresholds:
        valid = det_scores >= t
        key = int(np.count_nonzero(valid & overlapping))
        if key not in matchings:
            discrete, continuous, _ = match_at_threshold(scores, valid & overlapping)
            matchings[key] = (discrete, continuous)
        discrete, continuous = matchings[key]
        rows.append((discrete, continuous, int(valid.sum()) - discrete))
    stats = np.array(rows, dtype=np.float64)  # [K, 3]
    return ImageROC(thresholds, stats[:, 0], stats[:, 1], stats[:, 2], num_faces)


@dataclass
class FDDBResult:
    """The merged ROC over all images (rows in ascending threshold order, as the official files).

    Attributes:
        thresholds, false_positives, tpr_discrete, tpr_continuous: ``ndarray[R]``.
        num_faces, num_images: totals. ``name``: method label. ``notes``: remarks.
    """

    thresholds: np.ndarray
    false_positives: np.ndarray
    tpr_discrete: np.ndarray
    tpr_continuous: np.ndarray
    num_faces: int
    num_images: int
    name: str = ""
    notes: list[str] = field(default_factory=list)

    def tpr_at_fp(self, max_false_positives: int = 1000, kind: str = "discrete") -> float:
        """TPR of the first row (ascending threshold) with fewer than ``max_false_positives`` FPs."""
        tpr = self.tpr_discrete if kind == "discrete" else self.tpr_continuous
        rows = np.flatnonzero(self.false_positives < max_false_positives)
        return float(tpr[rows[0]]) if rows.size else 0.0

    def write_roc_files(self, out_dir: str | Path, prefix: str = "") -> tuple[Path, Path]:
        """``<out_dir>/<prefix>DiscROC.txt`` (``TPR FP threshold``) and ``<prefix>ContROC.txt``
        (``TPR FP``), as the official tool writes them."""
        disc, cont = Path(out_dir) / f"{prefix}DiscROC.txt", Path(out_dir) / f"{prefix}ContROC.txt"
        disc_lines = [f"{t:.9g} {int(f)} {s:.9g}" for t, f, s in zip(self.tpr_discrete, self.false_positives, self.thresholds)]
        cont_lines = [f"{t:.9g} {int(f)}" for t, f in zip(self.tpr_continuous, self.false_positives)]
        atomic_write_text(disc, "\n".join(disc_lines) + "\n")
        atomic_write_text(cont, "\n".join(cont_lines) + "\n")
        return disc, cont


def merge_image_rocs(images: Sequence[ImageROC]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Sum step functions over images at the union of their thresholds (``Results::merge``).

    Returns ``(thresholds, tp_discrete, tp_continuous, false_positives, num_faces)``.
    """
    all_thresholds, deltas = [], []
    for roc in images:
        values = np.stack([roc.tp_discrete, roc.tp_continuous, roc.false_positives], axis=1)  # [K, 3]
        next_values = np.vstack([values[1:], np.zeros((1, 3))])
        all_thresholds.append(roc.thresholds)
        deltas.append(values - next_values)  # the step each threshold adds below it
    thresholds = np.concatenate(all_thresholds)
    steps = np.concatenate(deltas)
    order = np.argsort(thresholds, kind="stable")
    thresholds, steps = thresholds[order], steps[order]
    suffix = np.cumsum(steps[::-1], axis=0)[::-1]  # [N, 3] sum of steps at thresholds >= each
    unique, first = np.unique(thresholds, return_index=True)
    totals = suffix[first]
    return unique, totals[:, 0], totals[:, 1], totals[:, 2], int(sum(r.num_faces for r in images))


def evaluate_fddb(
    annotations: Mapping[str, np.ndarray],
    detections: Mapping[str, np.ndarray],
    image_sizes: Mapping[str, tuple[int, int]],
    *,
    image_list: Iterable[str] | None = None,
    detection_kind: str = "rect",
    progress: bool = False,
    name: str = "",
) -> FDDBResult:
    """Discrete and continuous ROC of FDDB detections.

    Args:
        annotations: name -> ``ndarray[K, 5]`` ellipses (:func:`read_fddb_ellipses`).
        detections: name -> ``ndarray[N, 5]`` rectangles (or ``[N, 6]`` ellipses).
        image_sizes: name -> ``(height, width)``: masks are drawn on the image grid.
        image_list: images to evaluate (default: all annotated images, in file order).
        detection_kind: ``"rect"`` or ``"ellipse"``.
    """
    from tqdm import tqdm

    names = list(image_list) if image_list is not None else list(annotations)
    rocs = []
    for image_name in tqdm(names, desc="FDDB", unit="img", disable=not progress):
        if image_name not in annotations:
            raise DataError(f"image '{image_name}' has no FDDB annotation")
        if image_name not in detections:
            raise DataError(f"image '{image_name}' is missing from the detections (the official tool requires all images)")
        if image_name not in image_sizes:
            raise DataError(f"no image size for '{image_name}'")
        rocs.append(_evaluate_image(annotations[image_name], detections[image_name], image_sizes[image_name], detection_kind))
    thresholds, disc, cont, fp, num_faces = merge_image_rocs(rocs)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr_d = disc / num_faces if num_faces else np.zeros_like(disc)
        tpr_c = cont / num_faces if num_faces else np.zeros_like(cont)
    return FDDBResult(thresholds, fp, tpr_d, tpr_c, num_faces, len(names), name)


def _evaluate_image(ellipses: np.ndarray, dets: np.ndarray, size: tuple[int, int], kind: str) -> ImageROC:
    height, width = size
    gt_masks = [ellipse_mask(e, height, width) for e in ellipses]
    if kind == "rect":
        scores = rectangle_iou_matrix(gt_masks, dets[:, :4]) if len(gt_masks) else np.zeros((0, len(dets)))
    else:
        scores = pixel_iou_matrix(gt_masks, [ellipse_mask(d, height, width) for d in dets])
    return image_roc(scores, dets[:, -1] if len(dets) else np.zeros(0))


def image_sizes_from_folder(root: str | Path, names: Iterable[str], suffix: str = ".jpg") -> dict[str, tuple[int, int]]:
    """``(height, width)`` of ``<root>/<name><suffix>`` (header read only, via Pillow)."""
    from PIL import Image

    sizes = {}
    for image_name in names:
        path = Path(root) / f"{image_name}{suffix}"
        try:
            with Image.open(path) as image:
                sizes[image_name] = (image.height, image.width)
        except FileNotFoundError:
            raise DataError(f"FDDB image not found: {path}") from None
        except OSError as exc:
            raise DataError(f"cannot read FDDB image {path}: {exc}") from None
    return sizes


def rectangles_to_ellipses(
    boxes_ltwh: np.ndarray,
    weight: np.ndarray,
    mean_x: np.ndarray,
    std_x: np.ndarray,
    mean_y: np.ndarray,
    std_y: np.ndarray,
) -> np.ndarray:
    """S3FD's learned rectangle -> ellipse regression (``fitting.m``), with user-supplied parameters.

    ``x = [left, top, w, h]`` is standardised, mapped by the ``[4, 5]`` matrix ``weight``,
    de-standardised into ``(ra, rb, theta, cx, cy)``, and theta is turned by a quarter turn towards
    zero (``theta - pi/2`` if ``theta >= 0`` else ``theta + pi/2``).

    Args:
        boxes_ltwh: ``ndarray[N, 4]``.
        weight: ``ndarray[4, 5]``; mean_x, std_x: ``[4]``; mean_y, std_y: ``[5]``.

    Returns:
        ``ndarray[N, 5]`` ellipses ``ra rb theta cx cy``.
    """
    x = (np.asarray(boxes_ltwh, dtype=np.float64).reshape(-1, 4) - mean_x) / std_x  # [N, 4]
    y = x @ np.asarray(weight, dtype=np.float64).reshape(4, 5) * std_y + mean_y  # [N, 5]
    y[:, 2] = np.where(y[:, 2] >= 0, y[:, 2] - math.pi / 2, y[:, 2] + math.pi / 2)
    return y


def plot_fddb_roc(results: Sequence[FDDBResult], path: str | Path, kind: str = "discrete", max_fp: int = 2000) -> Path:
    """Discrete (or continuous) ROC of several methods on one PNG, legend with TPR@1000FP."""
    from facescope.eval.reports import _new_figure, save_figure

    figure = _new_figure()
    axes = figure.add_subplot(1, 1, 1)
    order = sorted(range(len(results)), key=lambda i: -results[i].tpr_at_fp(1000, kind))
    for i in order:
        result = results[i]
        tpr = result.tpr_discrete if kind == "discrete" else result.tpr_continuous
        label = f"{result.name or f'method {i + 1}'} ({result.tpr_at_fp(1000, kind):.4f})"
        axes.plot(result.false_positives, tpr, linewidth=1.8, label=label)
    axes.set(xlabel="False positives", ylabel="True positive rate", xlim=(0, max_fp), title=f"FDDB {kind} ROC")
    axes.grid(True, linestyle=":", linewidth=0.6)
    axes.legend(loc="lower right", fontsize=8)
    path = Path(path)
    save_figure(figure, path)
    return path
