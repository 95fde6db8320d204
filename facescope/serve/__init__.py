"""The detection service: ``facescope serve``, an HTTP API over one :class:`~facescope.Detector`.

Modules (none imports FastAPI, uvicorn or Ray at package import time):

* :mod:`facescope.serve.limits`: the service's limits (body size, pixel budget, requests in flight,
  read timeout) and :class:`~facescope.serve.limits.ServiceError`, an HTTP status with a one-line message;
* :mod:`facescope.serve.request`: the request parser (raw image body or multipart form, thresholds)
  and the image decoder, pure functions over bytes;
* :mod:`facescope.serve.batching`: the micro-batcher (an asyncio queue in front of one worker thread
  that runs the detector on groups of concurrent requests);
* :mod:`facescope.serve.service`: :class:`~facescope.serve.service.DetectionService`, the detector,
  the batcher and the limits of one process;
* :mod:`facescope.serve.app`: the FastAPI application (``POST /v1/detect``, ``GET /healthz``,
  ``GET /v1/models``, OpenAPI at ``/docs`` and ``/openapi.json``);
* :mod:`facescope.serve.server`: uvicorn with graceful shutdown, and the same application on Ray Serve.

The service needs the ``serve`` extra (``pip install "facescope[serve]"``); Ray Serve needs
``serve-ray``.
"""

SERVE_EXTRA_HINT = 'pip install "facescope[serve]"'
SERVE_RAY_EXTRA_HINT = 'pip install "facescope[serve-ray]"'
