"""Running the service: uvicorn in this process, or the same application on Ray Serve replicas.

Graceful shutdown (uvicorn). On SIGTERM or SIGINT the service starts draining at once (new requests
on open connections get 503 with ``Retry-After`` and ``Connection: close``; ``/healthz`` turns 503
so a load balancer stops sending), uvicorn closes its listening socket (new connections are
refused), the requests in flight complete (up to ``graceful_timeout_s``), and the application's
lifespan end finishes the batcher's queue before the process exits with 0.

Ray Serve. :func:`run_on_ray` deploys the same application (:func:`~facescope.serve.app.create_app`)
as a deployment of ``replicas`` replicas; each builds its own detector and batcher when it starts,
and Ray Serve's HTTP proxy spreads requests over them. Without ``address`` Ray starts a local
instance in this process; with one it joins that cluster (``ray start --head`` on the first node,
``ray start --address HEAD:6379`` on the others).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from facescope.serve.app import create_app
from facescope.serve.batching import BatchingConfig
from facescope.serve.limits import ServiceLimits

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from facescope.inference.detector import Detector

LOGGER = logging.getLogger("facescope.serve")
DEPLOYMENT_NAME = "facescope"


def run_uvicorn(
    app: FastAPI, host: str, port: int, graceful_timeout_s: float | None = None, log_level: str = "info"
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM / SIGINT, then shut down gracefully (see module doc)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server whose exit signal also starts the service's drain, before the
        listening socket closes, so no request is admitted that could be cut off."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            service = getattr(app.state, "service", None)
            if service is not None:
                service.begin_drain()
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                # uvicorn re-raises the exit signal once it has shut down, so the process would die
                # by it; the shutdown was graceful, so `facescope serve` returns and exits with 0
                getattr(self, "_captured_signals", []).clear()

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout_s, access_log=False
    )
    DrainingServer(config).run()


def run_on_ray(
    detector_factory: Callable[[], Detector],
    limits: ServiceLimits,
    batching: BatchingConfig,
    *,
    replicas: int,
    host: str,
    port: int,
    address: str | None = None,
    cpus_per_replica: float = 1.0,
    ready: Callable[[str], None] = print,
) -> None:
    """Deploy the application on Ray Serve with ``replicas`` replicas at ``http://host:port`` and
    block until SIGTERM / SIGINT; then Serve drains the replicas and Ray shuts down.

    ``detector_factory`` is pickled to the replicas (a module-level function or a
    ``functools.partial`` of one)."""
    import ray
    from ray import serve

    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING)
    # our handlers replace those ray.init installed, so a signal at any point (even while the replicas
    # start) ends in the orderly shutdown below
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": host, "port": port})
        app = create_app(detector_factory, limits, batching)
        deployment = serve.deployment(
            serve.ingress(app)(),
            name=DEPLOYMENT_NAME,
            num_replicas=replicas,
            ray_actor_options={"num_cpus": cpus_per_replica},
            max_ongoing_requests=limits.max_in_flight,
        )
        serve.run(deployment.bind(), name=DEPLOYMENT_NAME, route_prefix="/")
        if not stop.is_set():
            ready(f"facescope serve: {replicas} Ray Serve replicas at http://{host}:{port} (Ctrl-C or SIGTERM stops)")
        while not stop.wait(0.5):
            pass
        serve.shutdown()
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, which cannot be put back
                signal.signal(sig, handler)
        ray.shutdown()
