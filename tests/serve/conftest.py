"""Fixtures of the detection-service tests: a real SCRFD detector and real photos (helpers in serve_testing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def scrfd_500m_weights(scrfd_onnx: dict[str, Path]) -> Path:
    return scrfd_onnx["scrfd_500m_kps"]


@pytest.fixture(scope="session")
def served_detector(scrfd_500m_weights: Path):
    """The detector the in-thread servers run (one thread, as the service's worker)."""
    from facescope import Detector

    return Detector("scrfd_500m_kps", scrfd_500m_weights, threads=1, progress=False)


@pytest.fixture(scope="session")
def photo_bytes(shared_data: Path) -> dict[str, bytes]:
    """Real JPEGs: the 6-face crowd photo and two WIDER FACE val images."""
    wider = sorted((shared_data / "widerface" / "WIDER_val" / "images").rglob("*.jpg"))[:2]
    paths = [shared_data / "images" / "crowd" / "t1.jpg", *wider]
    return {path.name: path.read_bytes() for path in paths}
