"""Shared fixtures: the ../shared/data location, an isolated weights cache, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def shared_path(relative: str) -> Path:
    """Path inside the shared data folder; skips the test with a reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set FACESCOPE_SHARED_DATA to the folder holding SOURCES.md)")
    return path


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Torch-backend detectors set PyTorch's process-wide thread count (threads=); later tests get
    the count back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path("")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty FACESCOPE_HOME and no network: nothing is downloaded in tests."""
    home = tmp_path_factory.mktemp("facescope_home")
    monkeypatch.setenv("FACESCOPE_HOME", str(home))
    import facescope.models.weights as weights

    original = weights._read_url

    def local_only(url: str, progress: bool) -> bytes:
        if not url.startswith("file:"):
            raise OSError(f"network disabled in tests: {url}")
        return original(url, progress)

    monkeypatch.setattr(weights, "_read_url", local_only)
    return home


@pytest.fixture(scope="session")
def scrfd_onnx() -> dict[str, Path]:
    """Official SCRFD ONNX files by registry name (dynamic layout) plus the static-640 file."""
    return {
        "scrfd_500m_kps": shared_path("weights/scrfd/scrfd_500m_kps.onnx"),
        "scrfd_2.5g_kps": shared_path("weights/scrfd/scrfd_2.5g_kps.onnx"),
        "scrfd_500m_kps_static640": shared_path("weights/scrfd/scrfd_500m_bnkps_static640.onnx"),
    }


@pytest.fixture(scope="session")
def wider_val_images() -> list[Path]:
    """The 38 real WIDER FACE val images."""
    return sorted(shared_path("widerface/WIDER_val/images").rglob("*.jpg"))


@pytest.fixture(scope="session")
def retinaface_mnet_weights() -> Path:
    """The official Pytorch_Retinaface ``mobilenet0.25_Final.pth``."""
    return shared_path("weights/retinaface/mobilenet0.25_Final.pth")


@pytest.fixture(scope="session")
def retinaface_backbone_pretrain() -> Path:
    """Pytorch_Retinaface's ImageNet ``mobilenetV1X0.25_pretrain.tar``."""
    return shared_path("weights/retinaface/mobilenetV1X0.25_pretrain.tar")
