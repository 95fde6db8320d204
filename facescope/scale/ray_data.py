"""Face detection over an image collection on Ray Data.

The pipeline (:func:`detect_dataset`)::

    paths ──from_items──> map_batches(decode_images)     Ray tasks: read + decode (pixel budget), bad files
                                                        become rows with an error, never a failed job
          ──────────────> map_batches(DetectionActor)   an actor pool: one Detector per actor, built once,
                                                        detect_batch on each batch (one forward per batch
                                                        where the backend batches)
          ──> rows of the data contract (facescope.scale.records)

Ray Data streams it: decoding runs ahead of detection within the object store's budget, so memory does not
grow with the number of images. :func:`run_collection` consumes the stream on the driver and writes atomic
Parquet shards (results are small: a few hundred bytes per image; pixels never reach the driver); a re-run
into the same folder skips the images its shards hold.

Locally (no ``address``) Ray starts in this process with ``max(cores, actors x cpus_per_actor + 1)`` logical
CPUs (one left for the decoding tasks) and a bounded object store; on a cluster (``ray start --head`` on one
machine, ``ray start --address=HEAD:6379`` on the others, then ``address="auto"`` or ``HEAD:6379``) the
image paths and the weights file must be readable at the same path on every node.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from facescope.errors import FacescopeError
from facescope.inference.detector import Detector
from facescope.inference.image_io import read_image
from facescope.scale.records import SCHEMA, DetectorIdentity, ShardWriter, finished_paths, result_table
from facescope.scale.sources import list_source

DECODED_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("pixels", pa.large_binary()),  # BGR uint8, height x width x 3, row-major
        pa.field("error", pa.string()),
    ]
)
PATHS_PER_READ_BLOCK = 16  # images per decoding task
DECODE_TASK_MEMORY_BYTES = 512 << 20  # a decoding task: its 16 decoded images and the worker's own ~200 MB
LOCAL_OBJECT_STORE_BYTES = 1 << 30  # a local start's object store: bounds how far decoding runs ahead


@dataclass(frozen=True)
class ClusterOptions:
    """Where the job runs and how the detection actors are sized.

    Attributes:
        actors: detection actors (each holds one Detector).
        cpus_per_actor: CPUs Ray reserves per actor; also the actor's detector threads unless
            ``threads`` is given in the detector options.
        gpus_per_actor: GPUs per actor (0: CPU); with GPUs pass ``device="cuda"`` to the detector.
        batch_size: images per ``map_batches`` batch (and per ``detect_batch`` call).
        address: a running cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None starts
            Ray locally in this process (unless it already runs).
        object_store_bytes: object store of a local start.
    """

    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    batch_size: int = 16
    address: str | None = None
    object_store_bytes: int = LOCAL_OBJECT_STORE_BYTES

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise FacescopeError(f"actors must be >= 1, got {self.actors}")
        if not self.cpus_per_actor > 0 or self.gpus_per_actor < 0:
            raise FacescopeError(
                f"cpus_per_actor must be > 0 and gpus_per_actor >= 0, got {self.cpus_per_actor} and {self.gpus_per_actor}"
            )
        if self.batch_size < 1:
            raise FacescopeError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class CollectionSummary:
    """What a run did. ``startup_s``: from the call to the first results (Ray start, actor start, model
    load, first batch); ``running_s``: from the first results to the last, over which the
    ``running_images`` after the first batch were detected."""

    total: int
    skipped: int
    processed: int = 0
    running_images: int = 0
    errors: int = 0
    faces: int = 0
    shards: list[Path] = field(default_factory=list)
    startup_s: float = 0.0
    running_s: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Throughput once running (the images after the first results, over ``running_s``)."""
        return self.running_images / self.running_s if self.running_s > 0 else float("nan")


def decode_images(batch: pa.Table, max_pixels: int | None = None) -> pa.Table:
    """Ray task: read and decode every path of ``batch`` (column ``path``) to BGR pixels; a file that cannot
    be read (missing, corrupt, over the pixel budget) becomes a row with its ``error``."""
    rows: dict[str, list[Any]] = {name: [] for name in DECODED_SCHEMA.names}
    for path in batch.column("path").to_pylist():
        image, error = None, None
        try:
            image = read_image(path, max_pixels)
        except Exception as exc:  # noqa: BLE001 - any failure of one file is that file's row, not the job's
            error = str(exc) if isinstance(exc, FacescopeError) else f"cannot read image {path}: {type(exc).__name__}: {exc}"
        rows["path"].append(path)
        rows["width"].append(image.shape[1] if image is not None else None)
        rows["height"].append(image.shape[0] if image is not None else None)
        rows["pixels"].append(image.tobytes() if image is not None else None)
        rows["error"].append(error)
    return pa.Table.from_pydict(rows, schema=DECODED_SCHEMA)


class DetectionActor:
    """A Ray Data actor: builds one :class:`Detector` from ``detector_options`` when the actor starts and
    turns decoded batches into result rows."""

    def __init__(self, detector_options: dict[str, Any]) -> None:
        self.detector = Detector(**detector_options)
        self.identity = identity_of(self.detector)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ok = [i for i, row in enumerate(rows) if row["error"] is None]
        images = [np.frombuffer(rows[i]["pixels"], np.uint8).reshape(rows[i]["height"], rows[i]["width"], 3) for i in ok]
        found: list[Any] = [None] * len(rows)
        errors = [row["error"] for row in rows]
        for i, result in zip(ok, self._detect(images, [rows[i]["path"] for i in ok])):
            if isinstance(result, str):
                errors[i] = result
            else:
                found[i] = result
        sizes = [(r["width"], r["height"]) if r["width"] is not None else None for r in rows]
        return result_table([r["path"] for r in rows], sizes, found, errors, self.identity)

    def _detect(self, images: list[np.ndarray], paths: list[str]) -> list[Any]:
        """Detections per image; when the batch fails, each image alone, a failing one as its error text."""
        try:
            return list(self.detector.detect_batch(images, color_order="bgr"))
        except Exception:  # noqa: BLE001 - find the image at fault below
            pass
        results: list[Any] = []
        for image, path in zip(images, paths):
            try:
                results.append(self.detector.detect(image, color_order="bgr"))
            except Exception as exc:  # noqa: BLE001 - one image's failure is its row
                results.append(f"cannot detect faces in {path}: {type(exc).__name__}: {exc}")
        return results


def identity_of(detector: Detector) -> DetectorIdentity:
    """The identity a detector writes into its rows."""
    weights = str(detector.weights_path) if detector.weights_path is not None else ""
    return DetectorIdentity(detector.model_name, weights, detector.preset_name, detector.describe())


def detector_options_for(options: dict[str, Any], cluster: ClusterOptions) -> dict[str, Any]:
    """Detector keyword arguments for the actors: ``batch_size`` from the cluster options and, unless given,
    threads = the actor's CPUs (so an actor does not oversubscribe the cores Ray reserved for it)."""
    merged = {"progress": False, **options, "batch_size": cluster.batch_size}
    if merged.get("threads") is None and cluster.gpus_per_actor == 0:
        merged["threads"] = max(1, int(cluster.cpus_per_actor))
    return merged


def start_ray(cluster: ClusterOptions) -> bool:
    """Connect to ``cluster.address`` or start Ray locally; True when this call started (or joined) it."""
    if ray.is_initialized():
        return False
    import logging

    if cluster.address is not None:
        ray.init(address=cluster.address, logging_level=logging.WARNING)
        return True
    needed = math.ceil(cluster.actors * cluster.cpus_per_actor) + 1  # + 1: a slot for the decoding tasks
    ray.init(
        num_cpus=max(os.cpu_count() or 1, needed),
        num_gpus=math.ceil(cluster.actors * cluster.gpus_per_actor) or None,
        object_store_memory=cluster.object_store_bytes,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    return True


def detect_dataset(
    source: str | os.PathLike[str] | Sequence[str],
    cluster: ClusterOptions = ClusterOptions(),
    *,
    max_pixels: int | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    **detector_options: Any,
) -> ray.data.Dataset:
    """A lazy ``ray.data.Dataset`` of result rows (:mod:`facescope.scale.records`) for the images of ``source``.

    Args:
        source: a folder, a path-list file, a glob, or a sequence of image paths.
        cluster: actors, CPUs/GPUs per actor, batch size (the Ray instance must be running: see
            :func:`start_ray`; a plain ``ray.init()`` works too).
        max_pixels: the pixel budget (images over it become error rows).
        skip: absolute paths to leave out (those already done).
        detector_options: :class:`Detector` arguments (``model``, ``weights``, ``preset``, ``score_thresh``, ...).

    Nothing runs until the dataset is consumed (``iter_batches``, ``write_parquet``, ``take_all``...).

    Example:
        >>> ray.init()
        >>> ds = detect_dataset("photos/", model="scrfd_500m_kps", weights="scrfd_500m_kps.onnx")
        >>> ds.write_parquet("faces/")
    """
    paths = list_source(source) if isinstance(source, (str, os.PathLike)) else list(dict.fromkeys(map(os.path.abspath, source)))
    pending = [p for p in paths if p not in skip]
    if not pending:
        return ray.data.from_arrow(SCHEMA.empty_table())
    options = detector_options_for(detector_options, cluster)
    blocks = max(1, math.ceil(len(pending) / PATHS_PER_READ_BLOCK))
    # the decoding tasks reserve the memory of their decoded images; remote arguments that differ from the
    # actors' also keep Ray from fusing decoding into the actors, so decoding overlaps detection
    decoded = ray.data.from_items([{"path": p} for p in pending], override_num_blocks=blocks).map_batches(
        decode_images,
        batch_size=PATHS_PER_READ_BLOCK,
        batch_format="pyarrow",
        fn_kwargs={"max_pixels": max_pixels},
        num_cpus=1,
        memory=DECODE_TASK_MEMORY_BYTES,
    )
    return decoded.map_batches(
        DetectionActor,
        fn_constructor_kwargs={"detector_options": options},
        batch_size=cluster.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=cluster.actors),
        num_cpus=cluster.cpus_per_actor,
        num_gpus=cluster.gpus_per_actor or None,
    )


def run_collection(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cluster: ClusterOptions = ClusterOptions(),
    *,
    max_pixels: int | None = None,
    shard_rows: int = 1000,
    shard_seconds: float = 10.0,
    progress: bool = False,
    **detector_options: Any,
) -> CollectionSummary:
    """Detect faces in every image of ``source`` not yet in ``out_dir``; write Parquet shards there.

    The detector is built once here first (on the CPU), so a wrong model, weights file or option fails in
    one line before Ray starts. A shard is written every ``shard_rows`` results or ``shard_seconds`` seconds
    (whichever comes first) and at the end: a crash loses at most that much finished work, and a
    re-run skips everything in the folder. ``progress``: a bar over the images to do.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FacescopeError(f"--out-dir {out} is a file; it must be a folder (created if missing)")
    started = time.perf_counter()
    paths = list_source(source)
    # checks model, weights and options now, on the CPU: the driver of a GPU job need not have a GPU
    local = Detector(**{**detector_options_for(detector_options, cluster), "device": "cpu", "fp16": False})
    identity = identity_of(local)
    del local
    done = finished_paths(out, identity.settings) if out.exists() else set()
    summary = CollectionSummary(total=len(paths), skipped=sum(p in done for p in paths))
    if summary.skipped == summary.total:
        return summary
    from tqdm import tqdm

    started_here = start_ray(cluster)
    bar = tqdm(total=summary.total - summary.skipped, desc="detect (ray)", unit="img", disable=not progress)
    try:
        dataset = detect_dataset(paths, cluster, max_pixels=max_pixels, skip=done, **detector_options)
        _consume(dataset, ShardWriter(out), summary, started, shard_rows, shard_seconds, bar.update)
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    return summary


def _consume(
    dataset: ray.data.Dataset,
    writer: ShardWriter,
    summary: CollectionSummary,
    started: float,
    shard_rows: int,
    shard_seconds: float,
    progress: Callable[[int], Any],
) -> None:
    """Stream result batches to shards, counting as they come."""
    pending: list[pa.Table] = []
    first_at: float | None = None
    last_write = time.perf_counter()
    for batch in _batches(dataset):
        now = time.perf_counter()
        if first_at is None:
            first_at = now
            summary.startup_s = now - started
        else:
            summary.running_images += batch.num_rows
        summary.processed += batch.num_rows
        pending.append(batch)
        summary.errors += batch.num_rows - batch.column("error").null_count
        summary.faces += sum(len(s) for s in batch.column("scores").to_pylist())
        progress(batch.num_rows)
        if sum(t.num_rows for t in pending) >= shard_rows or now - last_write >= shard_seconds:
            _flush(writer, pending, summary)
            last_write = now
    _flush(writer, pending, summary)
    if first_at is not None:
        summary.running_s = time.perf_counter() - first_at


def _batches(dataset: ray.data.Dataset) -> Iterator[pa.Table]:
    yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")


def _flush(writer: ShardWriter, pending: list[pa.Table], summary: CollectionSummary) -> None:
    shard = writer.write(pending)
    if shard is not None:
        summary.shards.append(shard)
    pending.clear()
