"""``facescope serve``: the detection service over HTTP (FastAPI on uvicorn, or on Ray Serve replicas)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import socket
from functools import partial

from facescope.cli import argtypes
from facescope.cli.common import add_model_arguments, make_detector
from facescope.errors import FacescopeError

EXAMPLES = """examples:
  facescope serve --model scrfd_500m_kps --weights scrfd_500m_kps.onnx          # http://127.0.0.1:8080/docs
  curl --data-binary @photo.jpg -H "Content-Type: image/jpeg" http://127.0.0.1:8080/v1/detect
  curl -F image=@photo.jpg "http://127.0.0.1:8080/v1/detect?score_thresh=0.3"
  facescope serve --ray --replicas 2 --port 8000                               # Ray Serve, 2 replicas
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve face detection over HTTP (POST /v1/detect)",
        description="An HTTP detection service: POST an image to /v1/detect, get the JSON of `facescope detect --json`. "
        "Concurrent requests are micro-batched. Needs the serve extra (Ray Serve: serve-ray).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=argtypes.port, default=8080, help="TCP port (default 8080)")
    batching = parser.add_argument_group("micro-batching")
    batching.add_argument("--max-batch-size", type=argtypes.positive_int, default=8, help="images per batch at most (default 8)")
    batching.add_argument(
        "--max-wait-ms", type=argtypes.non_negative_float, default=5.0, help="the most a lone request waits for others (default 5 ms)"
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body", type=argtypes.byte_count, default="20M", help="largest request body (default 20M; 413 above)")
    limits.add_argument(
        "--max-pixels", type=argtypes.pixel_count,
        help="largest image, read from its header (default 250M, or $FACESCOPE_MAX_IMAGE_PIXELS; 422 above)",
    )  # fmt: skip
    limits.add_argument("--max-in-flight", type=argtypes.positive_int, default=64, help="requests at once (default 64; 503 above)")
    limits.add_argument(
        "--read-timeout", type=argtypes.positive_float, default=15.0, help="seconds a client has to send its body (default 15; 408 after)"
    )
    limits.add_argument("--retry-after", type=argtypes.positive_int, default=1, help="Retry-After seconds of a 503 (default 1)")
    limits.add_argument(
        "--graceful-timeout", type=argtypes.positive_float, default=30.0,
        help="on SIGTERM, seconds the requests in flight get to complete (default 30)",
    )  # fmt: skip
    ray = parser.add_argument_group("Ray Serve (extra serve-ray)")
    ray.add_argument("--ray", action="store_true", help="run on Ray Serve replicas instead of one uvicorn process")
    ray.add_argument("--replicas", type=argtypes.positive_int, default=1, help="Ray Serve replicas (default 1; needs --ray)")
    ray.add_argument("--address", help="Ray cluster to join (e.g. HEAD:6379 after `ray start --head`); default: a local Ray")
    ray.add_argument("--cpus-per-replica", type=argtypes.positive_float, default=1.0, help="CPUs Ray reserves per replica (default 1)")
    add_model_arguments(parser, default_model="scrfd_2.5g_kps")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _check_extras(args.ray)
    if not args.ray and (args.replicas != 1 or args.address):
        raise FacescopeError("--replicas and --address need --ray (one uvicorn process serves without them)")
    if not args.ray:
        _check_port_free(args.host, args.port)
    from facescope.serve.batching import BatchingConfig
    from facescope.serve.limits import ServiceLimits

    limits = ServiceLimits(
        max_body_bytes=args.max_body, max_pixels=args.max_pixels, max_in_flight=args.max_in_flight,
        read_timeout_s=args.read_timeout, retry_after_s=args.retry_after,
    )  # fmt: skip
    batching = BatchingConfig(max_batch_size=args.max_batch_size, max_wait_s=args.max_wait_ms / 1000.0)
    if args.ray:
        from facescope.serve.server import run_on_ray

        run_on_ray(
            partial(make_detector, args), limits, batching, replicas=args.replicas, host=args.host, port=args.port,
            address=args.address, cpus_per_replica=args.cpus_per_replica,
        )  # fmt: skip
        return 0
    from facescope.serve.app import create_app
    from facescope.serve.server import run_uvicorn

    detector = make_detector(args)  # a bad model, weights file or device fails here, before the port opens
    print(f"facescope serve: {detector.describe()} at http://{args.host}:{args.port} (API docs at /docs)", flush=True)
    run_uvicorn(create_app(detector, limits, batching), args.host, args.port, graceful_timeout_s=args.graceful_timeout)
    return 0


def _check_extras(ray: bool) -> None:
    """One line naming the extra when a package of the service is missing, before any work."""
    from facescope.serve import SERVE_EXTRA_HINT, SERVE_RAY_EXTRA_HINT

    missing = [name for name in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise FacescopeError(f"facescope serve needs {', '.join(missing)} (not installed): {SERVE_EXTRA_HINT}")
    if ray:
        try:
            importlib.import_module("ray.serve")
        except ImportError as exc:
            raise FacescopeError(f"facescope serve --ray needs Ray Serve ({exc.msg.split('.')[0]}): {SERVE_RAY_EXTRA_HINT}") from None


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on before the model is loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FacescopeError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
