"""The request parser and image decoder of POST /v1/detect: hand-made cases, then property-based
fuzzing (hypothesis, bounded example counts): whatever the bytes, the answer is a parsed value or a
ServiceError with a 4xx status, never another exception."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("python_multipart", reason='the detection service needs the serve extra: pip install "facescope[serve]"')
pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (the test extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from serve_testing import multipart_body, png_bomb  # noqa: E402

from facescope.serve.limits import ServiceError  # noqa: E402
from facescope.serve.request import (  # noqa: E402
    Thresholds,
    check_media_type,
    decode_request_image,
    image_bytes,
    parse_multipart,
    parse_thresholds,
)

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])  # ms per example


def small_jpeg(width: int = 48, height: int = 32) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (30, 120, 220)
    return cv2.imencode(".jpg", image)[1].tobytes()


def refused(call, status: int) -> str:
    with pytest.raises(ServiceError) as info:
        call()
    assert info.value.status == status, info.value.message
    return info.value.message


# ---------------------------------------------------------------- thresholds


def test_thresholds_in_range_are_parsed_and_missing_ones_stay_none() -> None:
    assert parse_thresholds({"score_thresh": "0.3", "nms_thresh": "1"}) == Thresholds(0.3, 1.0)
    assert parse_thresholds({"score_thresh": "0"}) == Thresholds(0.0, None)
    assert parse_thresholds({}) == Thresholds(None, None)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"score_thresh": "1.5"}, "score_thresh must be in [0, 1], got 1.5"),
        ({"nms_thresh": "-0.1"}, "nms_thresh must be in [0, 1], got -0.1"),
        ({"score_thresh": "nan"}, "score_thresh must be in [0, 1]"),
        ({"score_thresh": "inf"}, "score_thresh must be in [0, 1]"),
        ({"nms_thresh": "abc"}, "nms_thresh must be a number in [0, 1], got 'abc'"),
    ],
)
def test_out_of_range_thresholds_are_422_with_the_cli_words(query: dict[str, str], words: str) -> None:
    assert words in refused(lambda: parse_thresholds(query), 422)


# ---------------------------------------------------------------- content types and bodies


@pytest.mark.parametrize("content_type", ["image/jpeg", "IMAGE/PNG", "image/webp; charset=binary", "application/octet-stream"])
def test_raw_image_types_carry_the_body(content_type: str) -> None:
    assert image_bytes(content_type, b"\xff\xd8abc") == b"\xff\xd8abc"


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415_before_the_body_is_read(content_type: str | None) -> None:
    message = refused(lambda: check_media_type(content_type), 415)
    assert "is not an image" in message and "multipart/form-data" in message


def test_an_empty_body_is_400() -> None:
    assert "the request body is empty" in refused(lambda: image_bytes("image/jpeg", b""), 400)


def test_multipart_gives_the_image_field() -> None:
    body, content_type = multipart_body({"note": (None, b"hello"), "image": ("a.jpg", b"\xff\xd8JPEG\r\n--not-a-boundary")})
    assert image_bytes(content_type, body) == b"\xff\xd8JPEG\r\n--not-a-boundary"


def test_multipart_without_an_image_field_names_the_fields_it_has() -> None:
    body, content_type = multipart_body({"file": ("a.jpg", b"123")})
    assert "no 'image' field (fields: 'file')" in refused(lambda: image_bytes(content_type, body), 422)


@pytest.mark.parametrize(
    ("body", "boundary", "status", "words"),
    [
        (b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc", "b", 400, "ends before its closing boundary"),
        (b"not multipart at all", "b", 400, "malformed multipart"),
        (b"--b--\r\n", "", 400, "needs a boundary"),
    ],
)
def test_malformed_multipart_is_400(body: bytes, boundary: str, status: int, words: str) -> None:
    assert words in refused(lambda: parse_multipart(body, boundary), status)


# ---------------------------------------------------------------- decoding


def test_a_real_jpeg_decodes_to_bgr() -> None:
    image = decode_request_image(small_jpeg(), None)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8


def test_truncated_and_undecodable_images_are_422() -> None:
    jpeg = small_jpeg(320, 240)
    assert "not a decodable image" in refused(lambda: decode_request_image(jpeg[: len(jpeg) // 2], None), 422)
    assert "not a decodable image" in refused(lambda: decode_request_image(b"plain text, no image", None), 422)


def test_a_png_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_bomb(4000, 4000)  # 16 MP of zeros in a few KB
    assert len(bomb) < 64 * 1024
    message = refused(lambda: decode_request_image(bomb, 10_000_000), 422)
    assert "4000x4000 pixels" in message and "facescope serve --max-pixels" in message


# ---------------------------------------------------------------- property-based fuzzing


def _outcome(call) -> object:
    """The value, or the ServiceError (which must be a 4xx); any other exception fails the test."""
    try:
        return call()
    except ServiceError as exc:
        assert 400 <= exc.status < 500 and exc.message and "\n" not in exc.message
        return exc


content_types = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(["image/jpeg", "application/octet-stream", "multipart/form-data", "text/plain"]).flatmap(
        lambda kind: st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40).map(
            lambda params: f"{kind}; {params}"
        )
    ),
)


@FUZZ
@given(content_type=content_types, body=st.binary(max_size=512))
def test_fuzz_any_content_type_and_body_parse_or_refuse(content_type: str | None, body: bytes) -> None:
    result = _outcome(lambda: image_bytes(content_type, body))
    assert isinstance(result, (bytes, ServiceError))


boundaries = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?", min_size=1, max_size=70)


@FUZZ
@given(boundary=boundaries, body=st.binary(max_size=512))
def test_fuzz_random_multipart_bodies_parse_or_refuse(boundary: str, body: bytes) -> None:
    framed = f"--{boundary}\r\n".encode() + body  # random bytes after a real opening boundary
    for data in (body, framed):
        result = _outcome(lambda: parse_multipart(data, boundary))
        assert isinstance(result, (list, ServiceError))


@FUZZ
@given(boundary=boundaries, payload=st.binary(max_size=2048), other=st.binary(max_size=64))
def test_fuzz_multipart_round_trip(boundary: str, payload: bytes, other: bytes) -> None:
    delimiter = f"\r\n--{boundary}".encode()
    if delimiter in b"\r\n" + payload or delimiter in b"\r\n" + other or not payload:
        return  # a payload holding its own delimiter cannot be framed by it (RFC 2046 requires a boundary absent from the data)
    body, content_type = multipart_body({"note": (None, other), "image": ("x.bin", payload)}, boundary)
    assert image_bytes(content_type, body) == payload


@FUZZ
@given(score=st.text(max_size=12), nms=st.text(max_size=12))
def test_fuzz_threshold_text_parses_into_range_or_refuses(score: str, nms: str) -> None:
    result = _outcome(lambda: parse_thresholds({"score_thresh": score, "nms_thresh": nms}))
    if isinstance(result, Thresholds):
        assert all(v is None or 0.0 <= v <= 1.0 for v in (result.score_thresh, result.nms_thresh))


def _check_decoded(result: object) -> None:
    if not isinstance(result, ServiceError):
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes_decode_or_refuse(data: bytes) -> None:
    _check_decoded(_outcome(lambda: decode_request_image(data, 1_000_000)))


_SEEDS = {"jpeg": small_jpeg(), "png": cv2.imencode(".png", np.full((24, 40, 3), 90, np.uint8))[1].tobytes()}


@FUZZ
@given(
    kind=st.sampled_from(sorted(_SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_fuzz_mutated_real_images_decode_or_refuse(kind: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Real JPEG / PNG files with flipped bytes (header fields included: sides, markers, CRCs) and truncation."""
    data = bytearray(_SEEDS[kind])
    for position, value in edits:
        data[position % len(data)] = value
    data = data[: max(1, len(data) - cut % len(data))]
    _check_decoded(_outcome(lambda: decode_request_image(bytes(data), 1_000_000)))
