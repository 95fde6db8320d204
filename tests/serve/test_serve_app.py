"""The service on a live uvicorn server on 127.0.0.1 under a real HTTP client (httpx): the same faces
as ``Detector``, micro-batching of concurrent requests, each bad request its 4xx with a message,
503 with Retry-After when full, 408 for a stalled client, the OpenAPI page."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='the detection service needs the serve extra: pip install "facescope[serve]"')
httpx = pytest.importorskip("httpx", reason="the service tests use httpx as the HTTP client")

from serve_testing import live_server, multipart_body, png_bomb  # noqa: E402

from facescope.inference.image_io import decode_image  # noqa: E402
from facescope.serve.app import create_app  # noqa: E402
from facescope.serve.batching import BatchingConfig  # noqa: E402
from facescope.serve.limits import ServiceLimits  # noqa: E402

pytestmark = pytest.mark.shared

# the JSON rounds coordinates to 2 decimals (as `facescope detect --json`): 0.005, plus the 1e-3 asked of the service
COORDINATE_ATOL = 0.005 + 1e-3
LIMITS = ServiceLimits(max_body_bytes=4 * 1024**2, max_pixels=30_000_000, max_in_flight=32, read_timeout_s=1.0)


@pytest.fixture(scope="module")
def server(served_detector) -> str:
    with live_server(create_app(served_detector, LIMITS, BatchingConfig(max_batch_size=8, max_wait_s=0.005))) as url:
        yield url


@pytest.fixture()
def client(server: str):
    with httpx.Client(base_url=server, timeout=60) as session:
        yield session


def assert_matches(payload: dict, detections, image: np.ndarray) -> None:
    """A /v1/detect answer holds ``detections`` (from Detector) for ``image``."""
    assert (payload["width"], payload["height"]) == (image.shape[1], image.shape[0])
    faces = payload["faces"]
    assert len(faces) == len(detections)
    if not faces:
        return
    np.testing.assert_allclose([f["box"] for f in faces], detections.boxes, atol=COORDINATE_ATOL, rtol=0)
    np.testing.assert_allclose([f["score"] for f in faces], detections.scores, atol=1e-5, rtol=0)
    np.testing.assert_allclose([f["landmarks"] for f in faces], detections.landmarks, atol=COORDINATE_ATOL, rtol=0)


def test_raw_and_multipart_requests_find_what_the_detector_finds(client, served_detector, photo_bytes) -> None:
    counts = []
    for name, data in photo_bytes.items():
        image = decode_image(data)
        expected = served_detector.detect(image, color_order="bgr")
        raw = client.post("/v1/detect", content=data, headers={"Content-Type": "image/jpeg"})
        body, content_type = multipart_body({"image": (name, data)})
        form = client.post("/v1/detect", content=body, headers={"Content-Type": content_type})
        for response in (raw, form):
            assert response.status_code == 200, response.text
            assert response.json()["model"] == "scrfd_500m_kps"
            assert_matches(response.json(), expected, image)
        counts.append(len(expected))
    assert counts[0] == 6  # the 6 faces of the crowd photo


def test_request_thresholds_equal_a_detector_built_with_them(client, scrfd_500m_weights, photo_bytes) -> None:
    from facescope import Detector

    tuned = Detector("scrfd_500m_kps", scrfd_500m_weights, threads=1, progress=False, score_thresh=0.2, nms_thresh=0.6)
    default_total = tuned_total = 0
    for data in photo_bytes.values():
        image = decode_image(data)
        response = client.post("/v1/detect", params={"score_thresh": 0.2, "nms_thresh": 0.6}, content=data,
                               headers={"Content-Type": "image/jpeg"})  # fmt: skip
        assert response.status_code == 200, response.text
        assert_matches(response.json(), tuned.detect(image, color_order="bgr"), image)
        tuned_total += len(response.json()["faces"])
        default_total += len(client.post("/v1/detect", content=data, headers={"Content-Type": "image/jpeg"}).json()["faces"])
    assert tuned_total > default_total  # the lower threshold did reach the detector


def test_concurrent_requests_are_micro_batched_and_each_gets_its_own_faces(server, served_detector, photo_bytes) -> None:
    items = list(photo_bytes.items()) * 8
    expected = {name: served_detector.detect(decode_image(data), color_order="bgr") for name, data in photo_bytes.items()}

    async def post_all() -> list:
        async with httpx.AsyncClient(base_url=server, timeout=60) as session:
            return await asyncio.gather(
                *(session.post("/v1/detect", content=data, headers={"Content-Type": "image/jpeg"}) for _, data in items)
            )

    responses = asyncio.run(post_all())
    for (name, data), response in zip(items, responses):
        assert response.status_code == 200, response.text
        assert_matches(response.json(), expected[name], decode_image(data))
    assert max(int(r.headers["X-Facescope-Batch"]) for r in responses) > 1


def _bad_requests(photo: bytes) -> list[tuple[str, dict, int, str]]:
    megabytes = lambda n: b"\0" * (n * 1024**2)  # noqa: E731

    def streamed(total_mib: int):
        for _ in range(total_mib):
            yield b"\0" * 1024**2

    jpeg = {"Content-Type": "image/jpeg"}
    body, form_type = multipart_body({"file": ("a.jpg", photo)})
    return [
        ("empty body", {"content": b"", "headers": jpeg}, 400, "the request body is empty"),
        ("text", {"content": b"hello, world", "headers": {"Content-Type": "text/plain"}}, 415, "'text/plain' is not an image"),
        ("text labelled as JPEG", {"content": b"hello, world", "headers": jpeg}, 422, "not a decodable image"),
        ("truncated JPEG", {"content": photo[: len(photo) // 2], "headers": jpeg}, 422, "not a decodable image"),
        ("PNG decompression bomb", {"content": png_bomb(8000, 8000), "headers": {"Content-Type": "image/png"}}, 422,
         "8000x8000 pixels (64.0 MP) exceed the image pixel budget of 30,000,000"),
        ("body over the limit, declared", {"content": megabytes(5), "headers": jpeg}, 413, "5,242,880 bytes"),
        ("body over the limit, streamed", {"content": streamed(5), "headers": jpeg}, 413, "over the limit of 4,194,304 bytes"),
        ("wrong content type", {"content": photo, "headers": {"Content-Type": "application/json"}}, 415, "is not an image"),
        ("no content type", {"content": photo, "headers": {"Content-Type": ""}}, 415, "is not an image"),
        ("score over 1", {"content": photo, "headers": jpeg, "params": {"score_thresh": "2"}}, 422,
         "score_thresh must be in [0, 1], got 2.0"),
        ("negative nms", {"content": photo, "headers": jpeg, "params": {"nms_thresh": "-1"}}, 422, "nms_thresh must be in [0, 1]"),
        ("form without image", {"content": body, "headers": {"Content-Type": form_type}}, 422, "no 'image' field"),
    ]  # fmt: skip


def test_each_bad_request_gets_its_4xx_with_a_message_and_health_stays_green(client, photo_bytes) -> None:
    photo = next(iter(photo_bytes.values()))
    for label, request, status, words in _bad_requests(photo):
        response = client.post("/v1/detect", **request)
        assert response.status_code == status, (label, response.text)
        error = response.json()["error"]
        assert error["status"] == status and words in error["message"], (label, error)
        assert "\n" not in error["message"]
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", label
    assert client.get("/v1/detect").status_code == 405
    missing = client.get("/v2/detect")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404
    assert client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"}).status_code == 200
    assert client.get("/healthz").json()["in_flight"] == 0


def _stall(url: str, declared: int = 1000) -> socket.socket:
    """A client that sends its headers and 10 bytes of a ``declared``-byte body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)), timeout=30)
    stalled.sendall(
        f"POST /v1/detect HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: {declared}\r\n\r\n".encode()
        + b"\xff\xd8" + b"\0" * 8
    )  # fmt: skip
    return stalled


def _response_of(stalled: socket.socket) -> bytes:
    received = b""
    while b"}" not in received:
        chunk = stalled.recv(4096)
        if not chunk:
            break
        received += chunk
    stalled.close()
    return received


def test_a_stalled_client_gets_408_after_the_read_timeout(server) -> None:
    started = time.monotonic()
    answer = _response_of(_stall(server))
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
    assert time.monotonic() - started < 20


def test_requests_over_max_in_flight_get_503_with_retry_after(served_detector, photo_bytes) -> None:
    limits = ServiceLimits(max_in_flight=1, read_timeout_s=2.0, retry_after_s=7)
    photo = next(iter(photo_bytes.values()))
    with live_server(create_app(served_detector, limits)) as url, httpx.Client(base_url=url, timeout=60) as client:
        stalled = _stall(url)  # holds the only place while it trickles
        time.sleep(0.3)
        refused = client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "7"
        assert "1 requests are in flight" in refused.json()["error"]["message"]
        assert client.get("/healthz").json()["in_flight"] == 1
        assert _response_of(stalled).startswith(b"HTTP/1.1 408")  # its timeout frees the place
        assert client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"}).status_code == 200


def test_openapi_describes_the_endpoints(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/detect", "/healthz", "/v1/models"} <= set(schema["paths"])
    detect = schema["paths"]["/v1/detect"]["post"]
    assert set(detect["requestBody"]["content"]) == {"image/*", "application/octet-stream", "multipart/form-data"}
    assert {p["name"] for p in detect["parameters"]} == {"score_thresh", "nms_thresh"}
    assert {"200", "400", "408", "413", "415", "422", "503"} <= set(detect["responses"])
    assert "DetectResponse" in schema["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_models_reports_the_served_model_and_limits(client, served_detector) -> None:
    (card,) = client.get("/v1/models").json()["models"]
    assert card["name"] == "scrfd_500m_kps" and card["weights"] == "scrfd_500m_kps.onnx" and card["landmarks"] is True
    assert card["description"] == served_detector.describe()
    assert card["limits"]["max_body_bytes"] == 4 * 1024**2 and card["limits"]["max_pixels"] == 30_000_000
    assert card["batching"] == {"max_batch_size": 8, "max_wait_s": 0.005}
