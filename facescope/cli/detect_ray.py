"""``facescope detect SOURCE --engine ray --out-dir OUT``: a collection on Ray Data (the ``ray`` extra).

SOURCE is a folder, a file listing image paths or a quoted glob; results go to OUT as Parquet shards
(:mod:`facescope.scale.records`) and a re-run into the same OUT skips the images already there.
"""

from __future__ import annotations

import argparse
import sys

from facescope.cli import argtypes
from facescope.errors import FacescopeError

RAY_EXTRA_HINT = 'pip install "facescope[ray]"'
DEFAULT_RAY_BATCH_SIZE = 16
LOCAL_ONLY_OPTIONS = (("out", "--out"), ("json", "--json"), ("crops", "--crops"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine options of ``facescope detect``."""
    group = parser.add_argument_group("collections on Ray Data (--engine ray, needs the ray extra)")
    group.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): this process; ray: Ray Data, SOURCE may also be a path-list file or a quoted glob",
    )
    group.add_argument("--address", help="a running Ray cluster (auto, HEAD:6379); default: start Ray in this process")
    group.add_argument("--out-dir", help="folder of Parquet result shards (--engine ray); a re-run skips the images in it")
    group.add_argument("--actors", type=argtypes.positive_int, default=1, help="detection actors, each with one model (default 1)")
    group.add_argument("--cpus-per-actor", type=argtypes.positive_float, default=1.0, help="CPUs per actor (default 1)")
    group.add_argument("--gpus-per-actor", type=argtypes.non_negative_float, default=0.0, help="GPUs per actor (default 0; use with --device cuda)")


def check_engine_options(args: argparse.Namespace) -> None:
    """Refuse options of the other engine, and ``--engine ray`` without the extra, before any work."""
    if args.engine != "ray":
        ray_only = [flag for name, flag in (("out_dir", "--out-dir"), ("address", "--address")) if getattr(args, name)]
        if ray_only:
            raise FacescopeError(f"{' and '.join(ray_only)} need --engine ray")
        return
    try:
        import pyarrow  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise FacescopeError(f"--engine ray needs Ray Data, which is not installed: {RAY_EXTRA_HINT}") from None
    local_only = [flag for name, flag in LOCAL_ONLY_OPTIONS if getattr(args, name)]
    if local_only:
        raise FacescopeError(f"{', '.join(local_only)} are not available with --engine ray; results go to --out-dir as Parquet")
    if not args.out_dir:
        raise FacescopeError("--engine ray needs --out-dir OUT (the folder of Parquet result shards)")


def run(args: argparse.Namespace) -> int:
    """Detect every image of ``args.source`` not yet in ``args.out_dir`` on Ray Data."""
    from facescope.cli.common import detector_options
    from facescope.cli.preflight import check_output_folder
    from facescope.scale.ray_data import ClusterOptions, run_collection

    check_output_folder("--out-dir", args.out_dir)
    cluster = ClusterOptions(
        actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
        gpus_per_actor=args.gpus_per_actor,
        batch_size=args.batch_size or DEFAULT_RAY_BATCH_SIZE,
        address=args.address,
    )
    _quiet_ray_logging()
    options = detector_options(args)
    summary = run_collection(args.source, args.out_dir, cluster, max_pixels=args.max_pixels, progress=not args.quiet, **options)
    if not args.quiet:
        rate = f", {summary.images_per_second:.1f} img/s once running" if summary.running_images else ""
        print(
            f"{summary.total} images: {summary.processed} detected now ({summary.faces} faces, {summary.errors} errors), "
            f"{summary.skipped} already in {args.out_dir}; start-up {summary.startup_s:.1f} s{rate}"
        )
    if summary.errors:
        from facescope.structures import count_noun

        print(f"facescope: warning: {count_noun(summary.errors, 'image')} could not be read or detected; see the error column", file=sys.stderr)
    return 1 if summary.errors else 0


def _quiet_ray_logging() -> None:
    """One facescope progress bar instead of Ray Data's operator bars and INFO lines."""
    import logging

    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
