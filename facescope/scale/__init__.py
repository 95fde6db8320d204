"""Detection beyond one process: image collections on Ray Data (``pip install "facescope[ray]"``).

* :mod:`facescope.scale.sources`: what ``SOURCE`` names (a folder, a file listing paths, a glob) as a list
  of image paths; no Ray.
* :mod:`facescope.scale.records`: the per-image result row (the data contract plus an ``error``), its
  Parquet schema, atomic shards and the scan of finished images that makes a run resumable.
* :mod:`facescope.scale.ray_data`: the Ray Data pipeline (decoding tasks, an actor pool of detectors)
  and the resumable run that writes the shards.
"""
