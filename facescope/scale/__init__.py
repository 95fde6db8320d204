"""Detection beyond one process: image collections on Ray Data (``pip install "facescope[ray]"``).

* :mod:`facescope.scale.sources`: what ``SOURCE`` names (a folder, a file listing paths, a glob) as a list
  of image paths; no Ray.
* :mod:`facescope.scale.records`: the per-image result row (the data contract plus an ``error``), its
  Parquet schema, atomic shards and the scan of finished images that makes a run resumable.
* :mod:`facescope.scale.ray_data`: the Ray Data pipeline (decoding tasks, an actor pool of detectors)
  and the resumable run that writes the shards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facescope._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from facescope.scale.ray_data import ClusterOptions, CollectionSummary, detect_dataset, run_collection
    from facescope.scale.records import read_results, row_detections
    from facescope.scale.sources import list_source

# imported on first use: ``import facescope.scale`` works without the ray extra
_LAZY_ATTRIBUTES = {
    "ClusterOptions": "facescope.scale.ray_data",
    "CollectionSummary": "facescope.scale.ray_data",
    "detect_dataset": "facescope.scale.ray_data",
    "run_collection": "facescope.scale.ray_data",
    "read_results": "facescope.scale.records",
    "row_detections": "facescope.scale.records",
    "list_source": "facescope.scale.sources",
}
__all__ = sorted(_LAZY_ATTRIBUTES)
__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES, globals())
