"""Load on the detection service: ``facescope serve`` in a subprocess on 127.0.0.1, a bounded number
of requests from an httpx client at a fixed concurrency, against in-process ``Detector.detect_batch``
on the same image bytes in the same run.

    FACESCOPE_SHARED_DATA=../shared/data python benchmarks/serve_load.py --requests 1000 --concurrency 16 \\
        --json benchmarks/results/serve_load.json

Reported: requests that failed (anything but 200, deliberate 503s counted apart), throughput
(images/s) of the service and of the reference (decode + ``detect_batch`` in batches of the service's
``--max-batch-size``, one thread: what the service's worker does without HTTP), their ratio (the two
alternate in ``--rounds`` rounds, so that other jobs on a shared machine weigh on both alike), CPU
milliseconds per image of the server, the client and the reference,
p50 / p99 latency, the micro-batch sizes the service ran, and the server's RSS before and after the
load (``VmRSS``: at start, after ``--warmup-requests`` unmeasured requests, after the measured ones)
and its peak (``VmHWM``). The client shares the machine's cores with the server.

:class:`ServerProcess` (a server subprocess on a free port, stopped with SIGTERM) and :func:`run_load`
are also used by the tests (``tests/serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def free_port() -> int:
    """A TCP port nobody listens on at the moment of asking (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_mb(pid: int, key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of process ``pid`` from ``/proc``, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


class ServerProcess:
    """``python -m facescope serve ARGS --port FREE`` as a subprocess; ``with`` waits until ``/healthz``
    answers 200 and stops it (SIGTERM, then SIGKILL after ``stop_timeout``) on exit."""

    def __init__(self, *args: str, ready_timeout: float = 120.0, stop_timeout: float = 60.0) -> None:
        self.args = [str(a) for a in args]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout, self.stop_timeout = ready_timeout, stop_timeout
        self._log = tempfile.NamedTemporaryFile(prefix="facescope-serve-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        import httpx

        command = [sys.executable, "-m", "facescope", "serve", "--port", str(self.port), *self.args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"facescope serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"facescope serve did not answer /healthz within {self.ready_timeout:g} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def terminate(self) -> int:
        """SIGTERM; the exit code once it has stopped (SIGKILL after ``stop_timeout``)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            self.terminate()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


@dataclass
class LoadResult:
    """Outcome of :func:`run_load`."""

    requests: int
    concurrency: int
    ok: int = 0
    refused_503: int = 0
    failed: int = 0
    failures: Counter = field(default_factory=Counter)  # status code or exception name -> count
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # of the 200s
    batch_sizes: Counter = field(default_factory=Counter)  # X-Facescope-Batch of the 200s -> count

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "concurrency": self.concurrency, "ok": self.ok, "refused_503": self.refused_503,
            "failed": self.failed, "failures": {str(k): v for k, v in self.failures.items()}, "wall_s": round(self.wall_s, 3),
            "images_per_s": round(self.throughput, 2), "p50_ms": round(self.percentile_ms(50), 1),
            "p99_ms": round(self.percentile_ms(99), 1), "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }  # fmt: skip


async def _load(url: str, bodies: list[bytes], requests: int, concurrency: int, timeout: float) -> LoadResult:
    import httpx

    result = LoadResult(requests, concurrency)
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            for index in counter:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/detect", content=bodies[index % len(bodies)], headers={"Content-Type": "image/jpeg"}
                    )
                except httpx.HTTPError as exc:
                    result.failed += 1
                    result.failures[type(exc).__name__] += 1
                    continue
                if response.status_code == 200:
                    result.ok += 1
                    result.latencies_ms.append((time.perf_counter() - started) * 1000)
                    result.batch_sizes[int(response.headers.get("X-Facescope-Batch", "0"))] += 1
                elif response.status_code == 503:
                    result.refused_503 += 1
                else:
                    result.failed += 1
                    result.failures[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall_s = time.perf_counter() - started
    return result


def run_load(url: str, bodies: list[bytes], requests: int, concurrency: int, timeout: float = 120.0) -> LoadResult:
    """POST ``requests`` images (``bodies`` in turn, as ``image/jpeg``) to ``url/v1/detect`` from
    ``concurrency`` concurrent clients; stops when all have been answered."""
    return asyncio.run(_load(url, bodies, requests, concurrency, timeout))


def reference_seconds(detector: Any, bodies: list[bytes], images: int, batch_size: int, start: int = 0) -> dict[str, float]:
    """In-process decoding and ``detect_batch`` of ``images`` of ``bodies`` (from index ``start``) in
    batches of ``batch_size``: seconds spent decoding, detecting, and CPU seconds."""
    from facescope.inference.image_io import decode_image

    chosen = [bodies[(start + i) % len(bodies)] for i in range(images)]
    decode_s = detect_s = 0.0
    cpu_start = cpu_seconds()
    for first in range(0, images, batch_size):
        began = time.perf_counter()
        decoded = [decode_image(body) for body in chosen[first : first + batch_size]]
        middle = time.perf_counter()
        detector.detect_batch(decoded, color_order="bgr")
        decode_s, detect_s = decode_s + middle - began, detect_s + time.perf_counter() - middle
    return {"images": images, "decode_s": decode_s, "detect_s": detect_s, "cpu_s": cpu_seconds() - cpu_start}


def merge_loads(parts: list[LoadResult]) -> LoadResult:
    """One :class:`LoadResult` of several runs (wall times added)."""
    total = LoadResult(sum(p.requests for p in parts), parts[0].concurrency)
    for part in parts:
        total.ok, total.refused_503, total.failed = total.ok + part.ok, total.refused_503 + part.refused_503, total.failed + part.failed
        total.failures.update(part.failures)
        total.batch_sizes.update(part.batch_sizes)
        total.latencies_ms += part.latencies_ms
        total.wall_s += part.wall_s
    return total


def shared_jpegs() -> list[bytes]:
    """The real photos of the shared data (crowd photos and the WIDER FACE val images), as JPEG bytes."""
    paths = sorted((SHARED / "images" / "crowd").glob("*.jpg")) + sorted((SHARED / "widerface" / "WIDER_val" / "images").rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no shared images under {SHARED} (set FACESCOPE_SHARED_DATA)")
    return [p.read_bytes() for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="scrfd_500m_kps")
    parser.add_argument("--weights", default=str(SHARED / "weights" / "scrfd" / "scrfd_500m_kps.onnx"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads, service and reference alike")
    parser.add_argument("--reference-images", type=int, default=200)
    parser.add_argument("--warmup-requests", type=int, default=100, help="sent before the measured requests")
    parser.add_argument("--rounds", type=int, default=5, help="reference and service alternate this many times")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()

    from facescope import Detector
    from facescope.inference.image_io import decode_image

    bodies = shared_jpegs()
    detector = Detector(args.model, args.weights, threads=args.threads, batch_size=args.max_batch_size, progress=False)
    detector.detect_batch([decode_image(bodies[0])] * args.max_batch_size, color_order="bgr")  # warm-up
    serve_args = ["--model", args.model, "--weights", args.weights, "--threads", str(args.threads),
                  "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    references, loads = [], []
    server_cpu = client_cpu = 0.0
    with ServerProcess(*serve_args) as server:
        rss_start = proc_status_mb(server.pid, "VmRSS")
        run_load(server.url, bodies, args.warmup_requests, args.concurrency)  # batch buffers and thread pools at size
        rss_before = proc_status_mb(server.pid, "VmRSS")
        # reference and service alternate in rounds, so that the load of other jobs on the machine
        # weighs on both alike
        for round_index in range(args.rounds):
            references.append(reference_seconds(detector, bodies, args.reference_images // args.rounds, args.max_batch_size,
                                                start=round_index * 7))  # fmt: skip
            server_start, client_start = cpu_seconds(server.pid), cpu_seconds()
            loads.append(run_load(server.url, bodies, args.requests // args.rounds, args.concurrency))
            server_cpu += cpu_seconds(server.pid) - server_start
            client_cpu += cpu_seconds() - client_start
        rss_after, rss_peak = proc_status_mb(server.pid, "VmRSS"), proc_status_mb(server.pid, "VmHWM")
        exit_code = server.terminate()
    load = merge_loads(loads)
    ref = {key: sum(r[key] for r in references) for key in references[0]}
    reference = {"images": ref["images"], "images_per_s": ref["images"] / (ref["decode_s"] + ref["detect_s"]),
                 "detect_only_images_per_s": ref["images"] / ref["detect_s"]}  # fmt: skip
    results = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": args.model, "threads": args.threads, "images": len(bodies), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "rounds": args.rounds, "reference": {k: round(v, 2) for k, v in reference.items()},
        "service": load.summary(), "ratio_to_reference": round(load.throughput / reference["images_per_s"], 3),
        "ratio_to_detect_only": round(load.throughput / reference["detect_only_images_per_s"], 3),
        "cpu_ms_per_image": {"server": round(1000 * server_cpu / load.ok, 1), "client": round(1000 * client_cpu / load.ok, 1),
                             "reference": round(1000 * ref["cpu_s"] / ref["images"], 1)},
        "server_rss_mb": {"started": round(rss_start, 1), "after_warmup": round(rss_before, 1), "after": round(rss_after, 1),
                          "peak": round(rss_peak, 1)},
        "server_exit_code": exit_code,
    }  # fmt: skip
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
