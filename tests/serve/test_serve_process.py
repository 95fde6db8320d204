"""``facescope serve`` as a process: a bounded load with no failure, SIGTERM during load (requests in
flight complete, new ones are refused cleanly, exit 0), and, slow, the bad requests of the acceptance
list at full size (a 100 MB body, a 900-megapixel PNG bomb) with the server's memory bounded."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

pytest.importorskip("fastapi", reason='the detection service needs the serve extra: pip install "facescope[serve]"')
httpx = pytest.importorskip("httpx", reason="the service tests use httpx as the HTTP client")

from serve_testing import png_bomb  # noqa: E402

from benchmarks.serve_load import ServerProcess, proc_status_mb, run_load  # noqa: E402

pytestmark = pytest.mark.shared


def serve_args(weights, *extra: str) -> list[str]:
    return ["--model", "scrfd_500m_kps", "--weights", str(weights), "--threads", "1", *extra]


async def _sigterm_while_in_flight(server: ServerProcess, body: bytes, in_flight: int, late: int) -> tuple[list, int, list]:
    """``in_flight`` requests are sent at once; when the server has admitted them all it gets SIGTERM,
    then ``late`` new requests follow, each on a new connection. Returns the first requests' status
    codes, how many of them were still running at the signal, and the late requests' outcomes."""
    jpeg = {"Content-Type": "image/jpeg"}
    pool = httpx.Limits(max_connections=in_flight + 4)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=pool) as session, httpx.AsyncClient(
        base_url=server.url, timeout=10
    ) as probe:
        admitted_before = (await probe.get("/healthz")).json()["admitted"]
        first = [asyncio.create_task(session.post("/v1/detect", content=body, headers=jpeg)) for _ in range(in_flight)]
        while True:  # the server's own count says when every one of them is in
            health = (await probe.get("/healthz")).json()
            if health["admitted"] - admitted_before >= in_flight:
                break
            await asyncio.sleep(0.002)
        os.kill(server.pid, signal.SIGTERM)
        running_at_signal = health["in_flight"]

        async def late_request() -> str:
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as fresh:
                    response = await fresh.post("/v1/detect", content=body, headers=jpeg)
                if response.status_code == 503:
                    assert response.headers["Retry-After"] and "shutting down" in response.json()["error"]["message"]
                return str(response.status_code)
            except httpx.TransportError as exc:
                return type(exc).__name__

        late_outcomes = []
        for _ in range(late):
            late_outcomes.append(await late_request())
            await asyncio.sleep(0.05)
        first_codes = [(await task).status_code for task in first]
    return first_codes, running_at_signal, late_outcomes


def test_bounded_load_then_sigterm_completes_in_flight_requests_and_refuses_new_ones(scrfd_500m_weights, photo_bytes) -> None:
    bodies = list(photo_bytes.values())
    with ServerProcess(*serve_args(scrfd_500m_weights, "--max-batch-size", "2")) as server:
        load = run_load(server.url, bodies, requests=32, concurrency=16)
        assert (load.ok, load.failed, load.refused_503) == (32, 0, 0), load.summary()
        assert max(load.batch_sizes) > 1  # concurrent requests were batched

        first, running_at_signal, late = asyncio.run(_sigterm_while_in_flight(server, bodies[0], in_flight=16, late=6))
        exit_code = server.process.wait(60)
        log = server.log()
    assert exit_code == 0, log
    assert running_at_signal > 0  # the signal did come while requests were running...
    assert first == [200] * 16  # ...and every request admitted before it completed
    # after the signal: 503 while the listening socket is still open, then no connection at all
    assert set(late) <= {"503", "ConnectError", "RemoteProtocolError", "ReadError"}, late
    assert late[-1] == "ConnectError", late
    assert "Traceback" not in log and "Application shutdown complete" in log


@pytest.mark.slow
def test_full_size_bad_requests_get_4xx_and_server_memory_stays_bounded(scrfd_500m_weights, photo_bytes) -> None:
    """Default limits (20 MiB bodies, the 250 MP pixel budget): a 100 MB body, streamed and declared,
    a 900 MP PNG bomb, a stalled client and the small bad requests, repeated; the server's peak RSS
    does not grow by what it refused."""
    from test_serve_app import _bad_requests, _response_of, _stall

    photo = next(iter(photo_bytes.values()))
    bomb = png_bomb(30_000, 30_000)  # 2.7 GB of BGR if decoded

    def hundred_megabytes():
        for _ in range(100):
            yield b"\0" * 1024**2

    with ServerProcess(*serve_args(scrfd_500m_weights, "--read-timeout", "2")) as server, httpx.Client(
        base_url=server.url, timeout=60
    ) as client:
        warm = run_load(server.url, list(photo_bytes.values()), requests=32, concurrency=16)  # model memory at its peak
        assert warm.ok == 32
        peak_before = proc_status_mb(server.pid, "VmHWM")
        for _ in range(3):
            for label, request, status, words in [
                ("100 MB streamed", {"content": hundred_megabytes()}, 413, "over the limit of 20,971,520 bytes"),
                ("100 MB declared", {"content": b"\0" * 100 * 1024**2}, 413, "104,857,600 bytes"),
                ("900 MP PNG bomb", {"content": bomb}, 422, "30000x30000 pixels (900.0 MP) exceed the image pixel budget"),
            ]:
                response = client.post("/v1/detect", headers={"Content-Type": "image/png"}, **request)
                assert response.status_code == status and words in response.json()["error"]["message"], label
            for label, request, status, _ in _bad_requests(photo):
                if status != 413 and "bomb" not in label:  # the small server's 4 MiB and 30 MP limits are not these
                    assert client.post("/v1/detect", **request).status_code == status, label
            assert _response_of(_stall(server.url)).startswith(b"HTTP/1.1 408")
            assert client.get("/healthz").json()["status"] == "ok"
        peak_after = proc_status_mb(server.pid, "VmHWM")
        assert client.post("/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"}).status_code == 200
    print(f"server VmHWM: {peak_before:.1f} MiB after the warm-up load, {peak_after:.1f} MiB after the bad requests")
    assert peak_after - peak_before < 48, (peak_before, peak_after)  # a held 100 MB body or a decoded bomb would show


@pytest.mark.slow
def test_two_ray_serve_replicas_share_the_load_and_find_what_the_detector_finds(
    scrfd_500m_weights, served_detector, photo_bytes
) -> None:
    """``facescope serve --ray --replicas 2`` on a real local Ray: both replicas answer, the faces are
    the Detector's, SIGTERM stops Serve and Ray and exits with 0."""
    pytest.importorskip("ray.serve", reason='Ray Serve needs the serve-ray extra: pip install "facescope[serve-ray]"')
    from test_serve_app import assert_matches

    from facescope.inference.image_io import decode_image

    ray_args = serve_args(scrfd_500m_weights, "--ray", "--replicas", "2", "--cpus-per-replica", "0.5", "--max-batch-size", "4")
    with ServerProcess(*ray_args, ready_timeout=300) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        load = run_load(server.url, list(photo_bytes.values()), requests=48, concurrency=8)
        assert (load.ok, load.failed) == (48, 0), load.summary()
        seen: dict[int, int] = {}  # replica pid -> images it has detected
        for _ in range(40):
            health = client.get("/healthz").json()
            seen[health["pid"]] = max(seen.get(health["pid"], 0), health["images"])
        assert len(seen) == 2 and all(images > 0 for images in seen.values()), seen
        for data in photo_bytes.values():
            image = decode_image(data)
            response = client.post("/v1/detect", content=data, headers={"Content-Type": "image/jpeg"})
            assert response.status_code == 200, response.text
            assert_matches(response.json(), served_detector.detect(image, color_order="bgr"), image)
        assert client.post("/v1/detect", content=b"text", headers={"Content-Type": "text/plain"}).status_code == 415
        exit_code = server.terminate()
    assert exit_code == 0
