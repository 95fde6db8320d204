"""The result row of one image and the Parquet shards that hold them.

One row per image: ``path``, ``width``, ``height``, ``boxes`` ``[N][4]`` (x1, y1, x2, y2 in the image's
pixels), ``scores`` ``[N]``, ``landmarks`` ``[N][5][2]`` (null for models without landmarks), ``model``,
``weights``, ``preset`` and ``error`` (null, or why the image could not be read or detected; its
detection columns are then empty). Coordinates are float32, exactly as :class:`~facescope.structures.Detections`
holds them.

Why Parquet rather than JSONL: the columns are typed (float32 coordinates round-trip exactly, JSON text
would round or bloat them), compressed, readable in one call by pyarrow, pandas, DuckDB or Spark, and
every shard carries its schema and the detector's settings (schema metadata), which a resumed run
checks before adding to the folder.

Shards are written atomically (a temporary dot-file renamed into place), so a folder only ever holds
complete shards: the paths in them are the images a re-run skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facescope.errors import FacescopeError
from facescope.fileio import atomic_path
from facescope.structures import Detections

SETTINGS_KEY = b"facescope_settings"
SHARD_GLOB = "part-*.parquet"

SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("boxes", pa.list_(pa.list_(pa.float32(), 4))),
        pa.field("scores", pa.list_(pa.float32())),
        pa.field("landmarks", pa.list_(pa.list_(pa.list_(pa.float32(), 2), 5))),
        pa.field("model", pa.string()),
        pa.field("weights", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class DetectorIdentity:
    """What produced a row: the model, weights file and preset, and the detector's one-line
    description (:meth:`~facescope.inference.detector.Detector.describe`: backend, size, thresholds,
    TTA) that a resumed run must match."""

    model: str
    weights: str
    preset: str
    settings: str


def result_table(
    paths: Sequence[str],
    sizes: Sequence[tuple[int, int] | None],
    detections: Sequence[Detections | None],
    errors: Sequence[str | None],
    identity: DetectorIdentity,
) -> pa.Table:
    """Rows for a batch of images: ``sizes`` ``(width, height)`` and ``detections`` None where ``errors`` says why."""
    boxes, scores, landmarks = [], [], []
    for found in detections:
        boxes.append(found.boxes.tolist() if found is not None else [])
        scores.append(found.scores.tolist() if found is not None else [])
        has_landmarks = found is not None and found.landmarks is not None
        landmarks.append(found.landmarks.tolist() if has_landmarks else None)  # type: ignore[union-attr]
    columns = {
        "path": list(paths),
        "width": [s[0] if s is not None else None for s in sizes],
        "height": [s[1] if s is not None else None for s in sizes],
        "boxes": boxes,
        "scores": scores,
        "landmarks": landmarks,
        "model": [identity.model] * len(paths),
        "weights": [identity.weights] * len(paths),
        "preset": [identity.preset] * len(paths),
        "error": list(errors),
    }
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    return table.replace_schema_metadata({SETTINGS_KEY: identity.settings.encode()})


def row_detections(row: dict[str, Any]) -> Detections:
    """A row (``table.to_pylist()`` item) back to :class:`Detections` (empty for an error row)."""
    boxes = np.asarray(row["boxes"] or [], dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(row["scores"] or [], dtype=np.float32).reshape(-1)
    landmarks = None if row["landmarks"] is None else np.asarray(row["landmarks"], dtype=np.float32).reshape(-1, 5, 2)
    return Detections(boxes, scores, landmarks)


class ShardWriter:
    """Writes result tables to ``out_dir/part-<run>-<n>.parquet``, one atomic file per :meth:`write`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex[:12]  # several runs (or writers) never pick the same name
        self.count = 0

    def write(self, tables: Sequence[pa.Table]) -> Path | None:
        """Concatenate ``tables`` into one shard; None when they hold no row."""
        if not tables or sum(t.num_rows for t in tables) == 0:
            return None
        table = pa.concat_tables(tables)
        path = self.out_dir / f"part-{self.run_id}-{self.count:05d}.parquet"
        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        self.count += 1
        return path


def shard_paths(out_dir: Path) -> list[Path]:
    """The complete shards in ``out_dir`` (temporary dot-files of an interrupted write are not shards)."""
    return sorted(p for p in Path(out_dir).glob(SHARD_GLOB) if not p.name.startswith("."))


def finished_paths(out_dir: Path, settings: str) -> set[str]:
    """Image paths already in ``out_dir``'s shards; a shard of other detector settings is refused
    (mixing them would make the folder's results silently inconsistent)."""
    done: set[str] = set()
    for shard in shard_paths(out_dir):
        try:
            metadata = pq.read_schema(shard).metadata or {}
            paths = pq.read_table(shard, columns=["path"]).column("path").to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise FacescopeError(f"cannot read result shard {shard}: {exc}; move it out of the folder") from None
        previous = metadata.get(SETTINGS_KEY, b"").decode()
        if previous != settings:
            raise FacescopeError(
                f"{shard} holds results of another detector ({previous or 'unknown settings'}), this run is "
                f"({settings}); use another --out-dir or the same settings"
            )
        done.update(paths)
    return done


def read_results(out_dir: str | Path) -> pa.Table:
    """Every row of ``out_dir``'s shards as one table (the shards' union; ``.to_pandas()`` for pandas)."""
    shards = shard_paths(Path(out_dir))
    if not shards:
        raise FacescopeError(f"{out_dir} holds no result shards ({SHARD_GLOB})")
    return pa.concat_tables([pq.read_table(s, schema=SCHEMA) for s in shards])
