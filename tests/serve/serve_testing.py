"""Helpers of the detection-service tests: a live uvicorn server in a thread, crafted bad inputs
(decompression bombs) and multipart bodies."""

from __future__ import annotations

import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # benchmarks/serve_load.py: the server subprocess and the load client

from benchmarks.serve_load import free_port  # noqa: E402


@contextmanager
def live_server(app) -> Iterator[str]:
    """``app`` on a real uvicorn server in a thread on a free 127.0.0.1 port; yields its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of ``width x height`` zeros: a few KB (per 10 MP) that decode to the full
    image, the classic decompression bomb."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    chunks = [compressor.compress(row) for _ in range(height)]
    data = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def multipart_body(fields: dict[str, tuple[str | None, bytes]], boundary: str = "facescope-test-boundary") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of ``name -> (filename or None, bytes)`` and its Content-Type."""
    parts = []
    for name, (filename, data) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
