"""Limits of the detection service and the HTTP errors that enforce them.

Every refusal is a :class:`ServiceError`: an HTTP status and a one-line message (the app answers
``{"error": {"status": ..., "message": ...}}``). What each limit answers:

* a body over ``max_body_bytes``: 413, from ``Content-Length`` before any byte is read, else as
  soon as the streamed body passes the limit (the body is never held beyond the limit);
* a body not complete within ``read_timeout_s`` (a slow or stalled client): 408;
* an image whose header declares more than ``max_pixels`` (the CLI's pixel budget,
  :func:`facescope.inference.image_io.max_image_pixels`): 422, before decoding;
* ``max_in_flight`` requests already admitted, or the service shutting down: 503 with
  ``Retry-After`` (the only temporary condition, so the only answer that carries it).

Worst-case memory of the requests in flight is about ``max_in_flight x (max_body_bytes + 3 x
max_pixels)`` bytes (the bodies and their decoded BGR images) on top of the model's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from facescope.errors import FacescopeError
from facescope.inference.validate import check_positive_int

MIB = 1024**2
DEFAULT_MAX_BODY_BYTES = 20 * MIB  # a 12 MP camera JPEG is 3 to 8 MB; a PNG screenshot of 4K about 20 MB
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_READ_TIMEOUT_S = 15.0
DEFAULT_RETRY_AFTER_S = 1


class ServiceError(FacescopeError):
    """A request the service refuses: ``status`` (an HTTP status code) and a one-line message;
    ``retry_after`` (seconds) for a temporary refusal."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class ServiceLimits:
    """What one service process accepts.

    Args:
        max_body_bytes: largest request body (bytes).
        max_pixels: pixel budget of an image (width x height, read from its header); None: the
            CLI's budget (``$FACESCOPE_MAX_IMAGE_PIXELS`` or 250 million).
        max_in_flight: requests admitted at once (reading, queued, detecting); more get 503.
        read_timeout_s: seconds a client has to send its whole body.
        retry_after_s: the ``Retry-After`` of a 503.
    """

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_pixels: int | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    retry_after_s: int = DEFAULT_RETRY_AFTER_S

    def __post_init__(self) -> None:
        check_positive_int("max_body_bytes", self.max_body_bytes)
        if self.max_pixels is not None:
            check_positive_int("max_pixels", self.max_pixels)
        check_positive_int("max_in_flight", self.max_in_flight)
        check_positive_int("retry_after_s", self.retry_after_s)
        if not (0.0 < float(self.read_timeout_s) < float("inf")):
            raise FacescopeError(f"read_timeout_s must be a number of seconds > 0, got {self.read_timeout_s!r}")


class InFlightGate:
    """Counts the requests admitted and refuses more than ``limits.max_in_flight``, or any while
    draining. Used from the event loop's thread only, so a plain counter suffices."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.count = 0  # in flight now
        self.admitted = 0  # since start
        self.draining = False

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the duration of the ``with`` block, or raise a 503 :class:`ServiceError`."""
        retry_after = self.limits.retry_after_s
        if self.draining:
            raise ServiceError(503, "the service is shutting down and takes no new requests", retry_after)
        if self.count >= self.limits.max_in_flight:
            raise ServiceError(
                503, f"{self.count} requests are in flight, the most this service takes at once; retry later", retry_after
            )
        self.count += 1
        self.admitted += 1
        try:
            yield
        finally:
            self.count -= 1


def check_content_length(header: str | None, limits: ServiceLimits) -> None:
    """Refuse a declared body over the limit before reading it (413); a malformed header is a 400."""
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise ServiceError(400, f"Content-Length must be a whole number, got {header!r}") from None
    if declared > limits.max_body_bytes:
        raise ServiceError(413, _too_large(f"{declared:,} bytes", limits))


async def read_body(chunks: AsyncIterator[bytes], limits: ServiceLimits) -> bytes:
    """The request body, refused (413) as soon as it passes ``max_body_bytes`` and (408) when not
    complete within ``read_timeout_s``. Whatever the client declared, no more than the limit is held."""
    import asyncio

    async def collect() -> bytes:
        body = bytearray()
        async for chunk in chunks:
            if len(body) + len(chunk) > limits.max_body_bytes:
                raise ServiceError(413, _too_large(f"more than {limits.max_body_bytes:,} bytes", limits))
            body += chunk
        return bytes(body)

    try:
        return await asyncio.wait_for(collect(), timeout=limits.read_timeout_s)
    except asyncio.TimeoutError:
        raise ServiceError(408, f"the request body did not arrive within {limits.read_timeout_s:g} s") from None


def _too_large(size: str, limits: ServiceLimits) -> str:
    return f"the request body ({size}) is over the limit of {limits.max_body_bytes:,} bytes (facescope serve --max-body)"
