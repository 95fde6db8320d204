"""The FastAPI application of ``facescope serve``.

Endpoints (OpenAPI page at ``/docs``, schema at ``/openapi.json``):

* ``POST /v1/detect``: an image (raw body or multipart ``image`` field), optional ``score_thresh``
  and ``nms_thresh`` query parameters in [0, 1]; answers the JSON of ``facescope detect --json``
  for one image, without the path: ``{"model", "width", "height", "faces": [{"box": [x1, y1, x2, y2],
  "score", "landmarks": [[x, y] x 5]}]}`` in the image's pixels (``landmarks`` only from models that
  predict them), and the header ``X-Facescope-Batch`` (the size of the micro-batch it ran in);
* ``GET /healthz``: 200 ``{"status": "ok", ...}`` while serving, 503 ``"draining"`` when shutting down;
* ``GET /v1/models``: the served model, its settings and the service's limits.

Errors are ``{"error": {"status": code, "message": "one line"}}``; 503s carry ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from facescope.errors import FacescopeError
from facescope.serve.batching import BatchingConfig
from facescope.serve.limits import ServiceError, ServiceLimits, check_content_length, read_body
from facescope.serve.request import (
    ACCEPTED_TYPES,
    IMAGE_FIELD,
    check_media_type,
    decode_request_image,
    image_bytes,
    parse_thresholds,
)
from facescope.serve.service import DetectionService

if TYPE_CHECKING:  # pragma: no cover
    from facescope.inference.detector import Detector

LOGGER = logging.getLogger("facescope.serve")
API_VERSION = "1"


class Face(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in the image's pixels", min_length=4, max_length=4)
    score: float = Field(description="confidence in [0, 1]")
    landmarks: list[list[float]] | None = Field(
        None, description="5 points (x, y): left eye, right eye, nose, left and right mouth corners; only from models that predict them"
    )


class DetectResponse(BaseModel):
    model: str = Field(description="the registered model that ran")
    width: int = Field(description="image width in pixels")
    height: int = Field(description="image height in pixels")
    faces: list[Face] = Field(description="faces by descending score")


class ErrorBody(BaseModel):
    status: int
    message: str = Field(description="one line saying what is wrong and what to send instead")


class ErrorResponse(BaseModel):
    error: ErrorBody


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    meanings = {
        400: "empty or malformed body",
        404: "no such path",
        408: "the body did not arrive within the read timeout",
        413: "the body is over the size limit",
        415: "the Content-Type cannot carry an image",
        422: "thresholds out of [0, 1], an undecodable image, or an image over the pixel budget",
        503: "too many requests in flight, or shutting down (see Retry-After)",
    }
    return {code: {"model": ErrorResponse, "description": meanings[code]} for code in codes}


_DETECT_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": 1},
            "description": f"override the served preset's {what} for this request ({flag} of `facescope detect`)",
        }
        for name, what, flag in (
            ("score_thresh", "score threshold", "--score-thresh"),
            ("nms_thresh", "NMS IoU threshold", "--nms-thresh"),
        )
    ],
    "requestBody": {
        "required": True,
        "description": f"the image file's bytes ({ACCEPTED_TYPES}), or a form with the file in '{IMAGE_FIELD}'",
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}},
                    "required": [IMAGE_FIELD],
                }
            },
        },
    },
}


def create_app(
    detector: Detector | Callable[[], Detector],
    limits: ServiceLimits | None = None,
    batching: BatchingConfig | None = None,
) -> FastAPI:
    """The service's ASGI application over ``detector`` (a built :class:`~facescope.Detector`, or a
    function building one when the application starts: each Ray Serve replica builds its own).

    The batcher starts and stops with the application's lifespan; stopping finishes every queued request."""
    from facescope.inference.detector import Detector

    limits = limits or ServiceLimits()
    batching = batching or BatchingConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = detector if isinstance(detector, Detector) else detector()
        service = DetectionService(built, limits, batching)
        service.start()
        app.state.service = service
        LOGGER.info("serving %s", built.describe())
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="facescope detection service",
        version=API_VERSION,
        description="Face detection over HTTP: boxes, scores and 5 landmarks in the image's pixels.",
        lifespan=lifespan,
    )
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _service(request: Request) -> DetectionService:
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise ServiceError(503, "the service is starting; the model is not loaded yet", retry_after=1)
    return service


def _add_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/detect",
        summary="Detect faces in one image",
        response_model=DetectResponse,
        response_model_exclude_none=True,
        responses=_error_responses(400, 408, 413, 415, 422, 503),
        openapi_extra=_DETECT_OPENAPI,
    )
    async def detect(request: Request) -> Response:
        service = _service(request)
        limits = service.limits
        with service.gate.admit():
            # everything that needs no body is checked before any of it is read
            thresholds = parse_thresholds(dict(request.query_params))
            content_type = request.headers.get("content-type")
            check_media_type(content_type)
            check_content_length(request.headers.get("content-length"), limits)
            body = await read_body(request.stream(), limits)
            data = image_bytes(content_type, body)
            image = await asyncio.to_thread(decode_request_image, data, limits.max_pixels)
            del body, data
            detections, batch_size = await service.detect(image, thresholds)
        height, width = image.shape[:2]
        payload = {"model": service.detector.model_name, "width": width, "height": height, **detections.to_dict()}
        return Response(json.dumps(payload), media_type="application/json", headers={"X-Facescope-Batch": str(batch_size)})

    @app.get("/healthz", summary="Liveness and load", responses=_error_responses(503))
    async def healthz(request: Request) -> JSONResponse:
        service = _service(request)
        health = service.health()
        if service.gate.draining:
            return JSONResponse(health, status_code=503, headers={"Retry-After": str(service.limits.retry_after_s)})
        return JSONResponse(health)

    @app.get("/v1/models", summary="The served model and the service's limits", responses=_error_responses(503))
    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"models": [_service(request).model_card()]})


def error_response(status: int, message: str, retry_after: int | None = None, close: bool = False) -> JSONResponse:
    """The JSON error answer: ``{"error": {"status", "message"}}``, ``Retry-After`` when temporary."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        # a refusal before the whole body was read: the connection closes rather than reading the rest
        return error_response(exc.status, exc.message, exc.retry_after, close=exc.status in (408, 413, 503))

    @app.exception_handler(FacescopeError)
    async def facescope_error(request: Request, exc: FacescopeError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # one line: Starlette re-raises an unhandled exception after this handler answers, and the ASGI server
        # logs its traceback then (LOGGER.exception here would print the traceback twice)
        LOGGER.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, f"{where}: {first.get('msg', 'invalid request')}")
