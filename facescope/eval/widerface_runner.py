"""Run a detector over WIDER FACE images, write official prediction files, evaluate.

The entry point for code (the training engine's periodic validation, notebooks) is
:func:`evaluate_detector_on_widerface`; ``facescope eval widerface`` is a thin layer over it.

* **Resumable**: an existing prediction file is kept (not recomputed) unless ``overwrite=True``;
  a ``run.json`` next to the predictions records which detector wrote them, and a different
  detector refuses to mix its files with them.
* **Mini-benchmark**: when only some of the split's images are present under ``images_root``,
  only those are evaluated, the result's ``mode`` is ``"mini-benchmark"`` and a warning is logged.
* **Protocol preset**: a :class:`~facescope.inference.detector.Detector` whose effective settings
  (preset plus overrides) differ from its model's ``"widerface"`` preset (the protocol of the
  published numbers) is refused with a message naming the differences and how to build the right
  detector; ``require_protocol_preset=False`` evaluates it as it is and adds a note to the result.
  Objects other than Detectors are evaluated as they are.
* **Scale-out**: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) every rank detects a disjoint
  shard of the images and writes its own files; after a ``torch.distributed`` barrier rank 0
  evaluates and the result is broadcast, so every rank returns the same
  :class:`~facescope.eval.widerface.WiderFaceResult`. A gloo group is created when none exists.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from facescope.distributed import barrier, broadcast_object, process_group_if_needed, rank_world
from facescope.errors import DataError, FacescopeError
from facescope.eval.widerface import MissingPolicy, WiderFaceResult, evaluate_widerface
from facescope.eval.widerface_io import (
    WiderGroundTruth,
    prediction_path,
    read_prediction_folder,
    read_wider_mat,
    write_prediction_file,
)
from facescope.fileio import atomic_write_text

LOGGER = logging.getLogger("facescope.eval")
PROTOCOL_PRESET = "widerface"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MANIFEST_NAME = "run.json"


class SupportsDetect(Protocol):
    """Anything with ``detect(image_bgr, color_order="bgr") -> Detections`` (e.g. a Detector)."""

    def detect(self, image: Any, *, color_order: str | None = None) -> Any: ...


@dataclass
class PredictionRun:
    """What :func:`predict_widerface` did on this rank."""

    num_images: int  # images of this rank's shard
    num_detected: int  # images run through the detector
    num_kept: int  # prediction files already present and kept
    rank: int = 0
    world_size: int = 1


def find_wider_images(images_root: str | Path, gt: WiderGroundTruth) -> tuple[dict[str, Path], int]:
    """Map ground-truth image keys to files ``<images_root>/<event>/<name>.jpg``.

    Returns:
        ``(key -> path for the images present, number of image files that are not in the GT)``.
    """
    root = Path(images_root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    wanted = set(gt.keys)
    found: dict[str, Path] = {}
    unknown = 0
    for path in sorted(root.glob("*/*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        key = f"{path.parent.name}/{path.stem}"
        if key in wanted:
            found[key] = path
        else:
            unknown += 1
    if not found:
        raise DataError(
            f"no image of the ground truth ({gt.source}) under {root}; expected the official layout "
            "<images>/<event>/<name>.jpg, e.g. WIDER_val/images/0--Parade/0_Parade_marchingband_1_465.jpg"
        )
    return found, unknown


def detections_to_xywh(detections: Any) -> tuple[np.ndarray, np.ndarray]:
    """:class:`~facescope.structures.Detections` -> (``ndarray[N, 4]`` x, y, w, h; ``ndarray[N]`` scores)."""
    boxes, scores, _ = detections.numpy()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # [N, 4]
    return xywh, np.asarray(scores, dtype=np.float64).reshape(-1)


def predict_widerface(
    detector: SupportsDetect,
    images: dict[str, Path],
    predictions_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> PredictionRun:
    """Detect faces on this rank's shard of ``images`` (key -> path) and write one official
    prediction file per image into ``predictions_dir/<event>/<name>.txt``.

    Shard = every ``world_size``-th key in sorted order, starting at ``rank``. Existing files are
    kept unless ``overwrite``. Unreadable images raise :class:`~facescope.errors.ImageReadError`
    (a silently skipped image would bias the AP).
    """
    from tqdm import tqdm

    from facescope.inference.image_io import read_image

    shard = sorted(images)[rank::world_size]
    todo = [key for key in shard if overwrite or not prediction_path(predictions_dir, key).is_file()]
    bar = tqdm(todo, desc="WIDER FACE", unit="img", disable=not progress or rank != 0 or not todo)
    for key in bar:
        detections = detector.detect(read_image(images[key]), color_order="bgr")
        boxes, scores = detections_to_xywh(detections)
        write_prediction_file(prediction_path(predictions_dir, key), key.rsplit("/", 1)[-1], boxes, scores)
    return PredictionRun(len(shard), len(todo), len(shard) - len(todo), rank, world_size)


class ProtocolPresetError(FacescopeError):
    """A detector's settings would change the WIDER FACE protocol of the published numbers."""


def protocol_preset_mismatch(detector: Any) -> str | None:
    """Why ``detector``'s settings differ from its model's ``"widerface"`` preset, or None when
    they match or cannot be compared (not a Detector, or a model without that preset).

    Compares the effective resize and post-processing settings (preset plus overrides), so
    ``Detector(m, preset="widerface", score_thresh=0.5)`` differs and RetinaFace's ``"official"``
    preset (identical to its ``"widerface"``) does not."""
    used = getattr(detector, "preset", None)
    presets = _detector_presets(detector)
    if used is None or presets is None or PROTOCOL_PRESET not in presets:
        # the presets cannot be compared, but a test-time augmentation run is never the
        # single-pass protocol of the published numbers
        tta = getattr(used, "tta", None)
        return None if tta is None else f"tta {_tta_name(tta)} (protocol: single pass)"
    protocol = presets[PROTOCOL_PRESET]
    differences = [
        f"{part}.{name} {value!r} (protocol: {expected!r})"
        for part in ("resize", "postprocess")
        for name, value, expected in _field_pairs(getattr(used, part, None), getattr(protocol, part, None))
        if value != expected
    ]
    used_tta, protocol_tta = _tta_name(getattr(used, "tta", None)), _tta_name(getattr(protocol, "tta", None))
    if used_tta != protocol_tta:
        differences.append(f"tta {used_tta} (protocol: {protocol_tta})")
    return "; ".join(differences) or None


def _tta_name(tta: Any) -> str:
    """``'single pass'`` or the protocol's quoted name (a TTASpec or a name)."""
    if tta is None:
        return "single pass"
    return repr(tta if isinstance(tta, str) else getattr(tta, "name", str(tta)))


def _detector_presets(detector: Any) -> Mapping[str, Any] | None:
    """The presets of the model a Detector runs: its registry entry's, or its family's for a built model."""
    entry = getattr(detector, "entry", None)
    if entry is not None:
        return entry.presets
    model = getattr(detector, "model", None)
    family = getattr(model, "family", None)
    if family is None:
        return None
    from facescope.models.registry import family_presets

    return family_presets(family)


def _field_pairs(used: Any, protocol: Any) -> list[tuple[str, Any, Any]]:
    if not (is_dataclass(used) and is_dataclass(protocol)):
        return [("settings", used, protocol)]
    return [(f.name, getattr(used, f.name), getattr(protocol, f.name, None)) for f in fields(used)]


def check_protocol_preset(detector: Any) -> None:
    """Raise :class:`ProtocolPresetError` when ``detector`` would not follow the WIDER FACE protocol."""
    mismatch = protocol_preset_mismatch(detector)
    if mismatch is None:
        return
    name = getattr(detector, "model_name", "MODEL")
    preset = getattr(detector, "preset_name", "?")
    raise ProtocolPresetError(
        f"this detector (preset '{preset}') would change the WIDER FACE protocol of the published numbers: {mismatch}; "
        f"build it with Detector('{name}', weights=..., preset='{PROTOCOL_PRESET}') and no threshold or size "
        "overrides, or pass require_protocol_preset=False to evaluate these settings anyway"
    )


def describe_detector(detector: Any) -> str:
    """One line identifying a detector and its settings (stored in ``run.json``)."""
    describe = getattr(detector, "describe", None)
    return describe() if callable(describe) else type(detector).__name__


def check_manifest(out_dir: Path, description: str, overwrite: bool) -> None:
    """Refuse to resume into prediction files written by a different detector."""
    path = out_dir / MANIFEST_NAME
    if overwrite or not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("detector")
    except (json.JSONDecodeError, AttributeError):
        raise DataError(f"{path}: not a facescope run record; remove it or pass overwrite=True (--overwrite)") from None
    if previous != description:
        raise DataError(
            f"{out_dir} holds predictions of another detector ('{previous}'; now '{description}'); "
            "use another output folder or pass overwrite=True (--overwrite) to recompute them"
        )


def write_manifest(out_dir: Path, description: str, extra: dict[str, Any] | None = None) -> None:
    payload = {"detector": description, **(extra or {})}
    atomic_write_text(out_dir / MANIFEST_NAME, json.dumps(payload, indent=1) + "\n")


def load_ground_truth(gt: str | Path | WiderGroundTruth) -> WiderGroundTruth:
    """A folder with the official .mat files, or an already loaded ground truth."""
    return gt if isinstance(gt, WiderGroundTruth) else read_wider_mat(gt)


def evaluate_detector_on_widerface(
    detector: SupportsDetect,
    images_root: str | Path,
    gt: str | Path | WiderGroundTruth,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    challenge: bool = True,
    name: str | None = None,
    write_report: bool = True,
    detector_id: str | None = None,
    require_protocol_preset: bool = True,
) -> WiderFaceResult:
    """Detect on the WIDER FACE images under ``images_root`` and evaluate them officially.

    Args:
        detector: a :class:`~facescope.inference.detector.Detector` (or anything with
            ``detect(image_bgr, color_order="bgr") -> Detections``), configured with the protocol
            preset (SCRFD: ``preset="widerface"``, score 0.02).
        images_root: ``WIDER_val/images`` (``<event>/<name>.jpg``). All 3,226 images give the
            official full-val numbers; fewer give a mini-benchmark (``result.mode``).
        gt: folder with ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``, or a
            :class:`WiderGroundTruth` already loaded (cheaper for repeated validation).
        out_dir: where ``predictions/<event>/<name>.txt``, ``run.json``, ``results.{txt,json}``
            and ``pr_{easy,medium,hard}.png`` go; None = a temporary folder, deleted afterwards.
        progress: tqdm progress bar (rank 0 only).
        overwrite: recompute prediction files that already exist.
        challenge: also compute the WIDER Face Challenge mAP (IoU 0.50:0.05:0.95).
        name: method label in tables/plots (default: the detector's description).
        write_report: write the table, JSON and PR plots into ``out_dir`` (ignored without it).
        detector_id: identity recorded in ``run.json`` to refuse resuming with another detector
            (default: ``detector.describe()``; include the weights file when it matters).
        require_protocol_preset: refuse (:class:`ProtocolPresetError`, before any image is read) a
            Detector whose settings differ from its model's ``"widerface"`` preset, since its APs
            would be silently lower than the protocol's; False evaluates it as it is and notes the
            difference in ``result.notes``.

    Returns:
        The same :class:`WiderFaceResult` on every rank: ``.ap`` = {"easy","medium","hard"},
        ``.mode`` = "full" | "mini-benchmark", ``.is_full``, ``.challenge_map``, curves, notes.
    """
    mismatch = protocol_preset_mismatch(detector)
    if require_protocol_preset:
        check_protocol_preset(detector)
    ground_truth = load_ground_truth(gt)
    images, unknown = find_wider_images(images_root, ground_truth)
    if unknown:
        LOGGER.warning("%d image(s) under %s are not in the ground truth and are ignored", unknown, images_root)
    if len(images) < len(ground_truth):
        LOGGER.warning(
            "MINI-BENCHMARK: only %d of the %d WIDER FACE images are present under %s; evaluating those only "
            "(not comparable with full-val numbers)",
            len(images),
            len(ground_truth),
            images_root,
        )
    with _DistributedSession() as session:
        work_dir = session.shared_dir(out_dir)
        try:
            description = detector_id or describe_detector(detector)
            result = _detect_and_evaluate(
                session, detector, description, images, ground_truth, work_dir, progress, overwrite, challenge, name
            )
            if mismatch is not None:
                result.notes.append(f"not the WIDER FACE protocol preset '{PROTOCOL_PRESET}': {mismatch}")
            if write_report and out_dir is not None and session.rank == 0:
                from facescope.eval.reports import write_results

                write_results([result], work_dir)
            session.barrier()
        finally:
            if out_dir is None and session.rank == 0:
                shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _detect_and_evaluate(
    session: _DistributedSession,
    detector: SupportsDetect,
    description: str,
    images: dict[str, Path],
    gt: WiderGroundTruth,
    work_dir: Path,
    progress: bool,
    overwrite: bool,
    challenge: bool,
    name: str | None,
) -> WiderFaceResult:
    check_manifest(work_dir, description, overwrite)
    session.barrier()
    if session.rank == 0:
        write_manifest(work_dir, description, {"images": len(images), "world_size": session.world_size})
    predictions_dir = work_dir / "predictions"
    run = predict_widerface(
        detector, images, predictions_dir, overwrite=overwrite, progress=progress, rank=session.rank, world_size=session.world
    )
    if run.num_kept:
        LOGGER.info("rank %d: kept %d existing prediction file(s)", session.rank, run.num_kept)
    session.barrier()
    result = None
    if session.rank == 0:
        subset = gt.restrict_to(images) if len(images) < len(gt) else gt
        predictions, _ = read_prediction_folder(predictions_dir, subset.keys)
        result = evaluate_widerface(predictions, subset, missing="error", challenge=challenge, name=name or description)
    return session.broadcast(result)


class _DistributedSession:
    """Rank/world and collectives of :mod:`facescope.distributed` for one evaluation; a no-op for a
    single process, a gloo group for the evaluation's lifetime under torchrun when none exists."""

    def __init__(self) -> None:
        self._group = process_group_if_needed()
        self.rank, self.world = rank_world()
        self.world_size = self.world

    def __enter__(self) -> _DistributedSession:
        self.rank, self.world = self._group.__enter__()
        self.world_size = self.world
        return self

    def __exit__(self, *exc: object) -> None:
        self._group.__exit__(*exc)

    def barrier(self) -> None:
        barrier()

    def broadcast(self, value: Any) -> Any:
        return broadcast_object(value)

    def shared_dir(self, out_dir: str | Path | None) -> Path:
        """``out_dir`` (created), or a temporary folder made by rank 0 and shared with all ranks."""
        if out_dir is not None:
            path = Path(out_dir)
            path.mkdir(parents=True, exist_ok=True)
            return path
        made = tempfile.mkdtemp(prefix="facescope_widerface_") if self.rank == 0 else None
        return Path(self.broadcast(made))


def evaluate_predictions_on_widerface(
    predictions_dir: str | Path,
    gt: str | Path | WiderGroundTruth,
    *,
    missing: MissingPolicy = "error",
    challenge: bool = True,
    name: str = "",
) -> WiderFaceResult:
    """Evaluate an existing official prediction folder (``<dir>/<event>/<name>.txt``).

    ``missing``: ``"error"`` | ``"empty"`` (MATLAB: absent files = no detections) | ``"skip"``
    (evaluate only the images that have a file: mini-benchmark).
    """
    ground_truth = load_ground_truth(gt)
    predictions, _ = read_prediction_folder(predictions_dir, ground_truth.keys)
    return evaluate_widerface(predictions, ground_truth, missing=missing, challenge=challenge, name=name)
