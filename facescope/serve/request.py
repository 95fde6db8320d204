"""The request parser and image decoder of ``POST /v1/detect``: pure functions over the body's
bytes and the request's headers and query, each refusal a :class:`~facescope.serve.limits.ServiceError`.

A request carries the image one of two ways:

* the raw bytes of the image file as the body, with ``Content-Type: image/...`` (``image/jpeg``,
  ``image/png``, ...) or ``application/octet-stream``;
* ``multipart/form-data`` with the file in the field named ``image`` (``curl -F image=@photo.jpg``).

Thresholds are query parameters (``score_thresh``, ``nms_thresh``) in the CLI's range, [0, 1],
checked by the same function as the CLI's ``--score-thresh`` (:func:`facescope.inference.validate.check_probability`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facescope.errors import FacescopeError, ImageReadError
from facescope.inference.image_io import ImageTooLargeError, decode_image
from facescope.inference.validate import check_probability
from facescope.serve.limits import ServiceError

IMAGE_FIELD = "image"
THRESHOLD_PARAMETERS = ("score_thresh", "nms_thresh")
ACCEPTED_TYPES = "image/jpeg, image/png, ... or application/octet-stream (the file's bytes), or multipart/form-data"
MAX_MULTIPART_PARTS = 16  # a form with more parts than this is not a detection request


@dataclass(frozen=True)
class Thresholds:
    """A request's own thresholds; None keeps the served detector's."""

    score_thresh: float | None = None
    nms_thresh: float | None = None


def parse_thresholds(query: dict[str, str]) -> Thresholds:
    """``score_thresh`` and ``nms_thresh`` from the query string, each in [0, 1] (422 otherwise)."""
    values: dict[str, float] = {}
    for name in THRESHOLD_PARAMETERS:
        text = query.get(name)
        if text is None or text == "":
            continue
        try:
            values[name] = check_probability(name, float(text))
        except ValueError as exc:  # float() of text that is no number; check_probability's range error
            message = str(exc) if isinstance(exc, FacescopeError) else f"{name} must be a number in [0, 1], got {text!r}"
            raise ServiceError(422, message) from None
    return Thresholds(**values)


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``"multipart/form-data; boundary=x"`` -> ``("multipart/form-data", {"boundary": "x"})``
    (type lower-cased, quotes removed); ``("", {})`` for a missing header."""
    from python_multipart.multipart import parse_options_header

    if not header:
        return "", {}
    kind, options = parse_options_header(header.encode("latin-1", errors="replace"))
    decode = lambda raw: raw.decode("latin-1")  # noqa: E731 - header bytes are latin-1 by HTTP's rules
    return decode(kind).strip(), {decode(key).lower(): decode(value) for key, value in options.items()}


def check_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """The request's media type and its parameters when it can carry an image (415 otherwise);
    checked before the body is read."""
    kind, options = parse_content_type(content_type)
    if kind.startswith("image/") or kind in ("application/octet-stream", "multipart/form-data"):
        return kind, options
    shown = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    raise ServiceError(415, f"{shown} is not an image: send {ACCEPTED_TYPES} with an '{IMAGE_FIELD}' file")


def image_bytes(content_type: str | None, body: bytes) -> bytes:
    """The image file's bytes carried by a request body (raw, or the multipart ``image`` field)."""
    kind, options = check_media_type(content_type)
    if not body:
        raise ServiceError(400, f"the request body is empty; send an image as {ACCEPTED_TYPES} with an '{IMAGE_FIELD}' file")
    if kind == "multipart/form-data":
        return multipart_image(body, options.get("boundary", ""))
    return body


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart form: its field name, file name (or None) and bytes."""

    name: str | None
    filename: str | None
    data: bytes


def parse_multipart(body: bytes, boundary: str) -> list[FormPart]:
    """Every part of a complete ``multipart/form-data`` body (400 when malformed or incomplete)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    if not boundary:
        raise ServiceError(400, "multipart/form-data needs a boundary parameter in its Content-Type")
    parts: list[FormPart] = []
    state: dict = {"headers": {}, "field": b"", "value": b"", "data": [], "ended": False}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        if len(parts) >= MAX_MULTIPART_PARTS:
            raise ServiceError(400, f"the multipart form has more than {MAX_MULTIPART_PARTS} parts")
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name, filename = options.get(b"name"), options.get(b"filename")
        text = lambda raw: raw.decode("utf-8", errors="replace") if raw is not None else None  # noqa: E731
        parts.append(FormPart(text(name), text(filename), b"".join(state["data"])))
        state["headers"], state["data"] = {}, []

    def on_end() -> None:
        state["ended"] = True

    callbacks = {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
    }  # fmt: skip
    try:
        parser = MultipartParser(boundary.encode("latin-1", errors="replace"), callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise ServiceError(400, f"malformed multipart/form-data body: {exc}") from None
    if not state["ended"]:
        raise ServiceError(400, "the multipart/form-data body ends before its closing boundary")
    return parts


def multipart_image(body: bytes, boundary: str) -> bytes:
    """The bytes of the form's ``image`` field (422 when the form has none)."""
    parts = parse_multipart(body, boundary)
    for part in parts:
        if part.name == IMAGE_FIELD:
            if not part.data:
                raise ServiceError(400, f"the multipart field '{IMAGE_FIELD}' is empty")
            return part.data
    found = ", ".join(repr(p.name) for p in parts) or "none"
    raise ServiceError(422, f"the multipart form has no '{IMAGE_FIELD}' field (fields: {found}); send the image as {IMAGE_FIELD}=@FILE")


def decode_request_image(data: bytes, max_pixels: int | None) -> np.ndarray:
    """BGR uint8 image of a request's bytes; the header's pixel count is checked against the budget
    before decoding. Refusals are 422 with the decoder's message."""
    try:
        return decode_image(data, max_pixels, source="in the request")
    except ImageTooLargeError as exc:
        raise ServiceError(422, str(exc).replace("--max-pixels", "facescope serve --max-pixels")) from None
    except ImageReadError as exc:
        raise ServiceError(422, str(exc)) from None
