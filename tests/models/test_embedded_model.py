"""The embedded default model: facescope's ONNX export of the official RetinaFace MobileNet-0.25
checkpoint, shipped in the package with its source and licence, torch-free and offline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facescope.models.registry import DEFAULT_MODEL, get_model_entry
from facescope.models.weights import cached_path, file_sha256

EMBEDDED = get_model_entry("retinaface_mnet025").weights[0]


def test_embedded_release_is_the_default_and_ships_with_source_and_licence():
    assert DEFAULT_MODEL == "retinaface_mnet025" and EMBEDDED.embedded and EMBEDDED.format == "onnx"
    path = cached_path(EMBEDDED)
    assert path.parent.name == "embedded" and path.parent.parent.name == "models"
    assert file_sha256(path) == EMBEDDED.sha256 and path.stat().st_size == EMBEDDED.size_bytes
    assert "MIT License" in (path.parent / "LICENSE").read_text()
    source = (path.parent / "SOURCE.md").read_text()
    assert "facescope export retinaface_mnet025 --weights mobilenet0.25_Final.pth --out retinaface_mnet025.onnx" in source
    assert EMBEDDED.sha256 in source and EMBEDDED.permissive


OFFLINE_NO_TORCH = """
import sys
class Blocked:  # the base install: no torch, scipy, matplotlib
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'scipy', 'matplotlib'):
            raise ImportError(name)
import urllib.request
def no_network(*args, **kwargs):
    raise OSError('network disabled in this test')
urllib.request.urlopen = no_network
sys.meta_path.insert(0, Blocked())
import numpy as np, facescope
detector = facescope.Detector()
image = np.zeros((120, 160, 3), np.uint8)
print(detector.model_name, detector.backend.name, len(detector.detect(image, color_order='bgr')), detector.weights_license)
"""


def test_detector_default_runs_without_torch_network_or_cache(tmp_path):
    env = {"FACESCOPE_HOME": str(tmp_path / "empty_home"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": ":".join(sys.path)}  # fmt: skip
    run = subprocess.run([sys.executable, "-c", OFFLINE_NO_TORCH], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().split(maxsplit=3) == ["retinaface_mnet025", "onnxruntime", "0", EMBEDDED.license]
    # no weights downloaded or cached (the onnxruntime backend may cache its merged-convolution rewrite of the
    # graph under onnx_optimized/ when the onnx package is there; the base install has none and writes nothing)
    home = tmp_path / "empty_home"
    assert not (home / "weights").exists() and (sorted(p.name for p in home.iterdir()) if home.exists() else []) in ([], ["onnx_optimized"])


@pytest.mark.shared
def test_embedded_export_computes_what_the_official_checkpoint_does(retinaface_mnet_weights, shared_data):
    """The committed file against the checkpoint in PyTorch, on a real photo at two sizes."""
    import cv2
    import torch

    from facescope.export.onnx import normalised_batch
    from facescope.inference.backends import OnnxRuntimeBackend
    from facescope.inference.image_io import read_image
    from facescope.models.registry import create_model

    model = create_model("retinaface_mnet025", retinaface_mnet_weights)
    backend = OnnxRuntimeBackend(cached_path(EMBEDDED), get_model_entry("retinaface_mnet025"))
    image = read_image(shared_data / "images/crowd/t1.jpg")
    for height, width in ((480, 640), (320, 416)):
        batch = normalised_batch([cv2.resize(image, (width, height))], model)
        with torch.no_grad():
            expected = model.activate(model(batch))
        got = backend(batch.numpy())
        for name in ("scores", "box_regs", "landmark_regs"):
            assert np.abs(getattr(got, name) - getattr(expected, name).numpy()).max() < 1e-4, name
