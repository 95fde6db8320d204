"""Checks that need a CUDA device (``pytest -m cuda``; run by ``benchmarks/gpu_check.sh``).

They skip with a reason on machines without one, so the default suite stays CPU-only. Each compares the GPU
against the CPU on the same inputs, so a wrong device path cannot pass silently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facescope.losses.criteria import build_criterion
from facescope.models import create_model, list_models
from facescope.structures import FaceTargets

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run benchmarks/gpu_check.sh there)"),
]


def _one_face(device: str) -> FaceTargets:
    boxes = torch.tensor([[20.0, 24.0, 60.0, 72.0]], device=device)
    points = torch.tensor([[[30.0, 40.0], [50.0, 40.0], [40.0, 50.0], [32.0, 62.0], [48.0, 62.0]]], device=device)
    return FaceTargets(boxes, points, torch.ones(1, 5, dtype=torch.bool, device=device))


@pytest.mark.parametrize("name", ["scrfd_500m_kps", "scrfd_2.5g", "retinaface_mnet025", "retinaface_paper_r50"])
def test_criterion_on_gpu_equals_cpu(name: str) -> None:
    """The same weights, images and faces give the same losses on both devices (float32, no AMP)."""
    torch.manual_seed(0)
    model = create_model(name).train()
    images = torch.randn(2, 3, 128, 128)
    losses = {}
    for device in ("cpu", "cuda"):
        model = model.to(device)
        criterion = build_criterion(model)
        result = criterion(model(images.to(device)), [_one_face(device), _one_face(device)], (128, 128))
        losses[device] = {k: float(v) for k, v in result.losses.items()}
    for key, value in losses["cpu"].items():
        assert losses["cuda"][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


@pytest.mark.parametrize("name", sorted(list_models()))
def test_amp_training_step_is_finite_for_every_model(name: str) -> None:
    """One mixed-precision step per registered model: finite loss and gradients after unscaling."""
    model = create_model(name, device="cuda").train()
    criterion = build_criterion(model)
    scaler = torch.amp.GradScaler("cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(2, 3, 256, 256, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        outputs = model(images)
    result = criterion(outputs.map(lambda t: t.float()), [_one_face("cuda"), _one_face("cuda")], (256, 256))
    assert torch.isfinite(result.total)
    scaler.scale(result.total).backward()
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    scaler.step(optimizer)
    scaler.update()


def test_gpu_detector_matches_cpu_on_real_images(scrfd_onnx, wider_val_images) -> None:
    """Official SCRFD-2.5G weights on the torch backend: the GPU finds the same faces as the CPU."""
    from facescope import Detector

    weights = scrfd_onnx["scrfd_2.5g_kps"]
    images = wider_val_images[:10]
    cpu = Detector("scrfd_2.5g_kps", weights, device="cpu", backend="torch")
    gpu = Detector("scrfd_2.5g_kps", weights, device="cuda", backend="torch")
    for path in images:
        a, b = cpu.detect(path), gpu.detect(path)
        assert len(a) == len(b), path.name
        np.testing.assert_allclose(np.asarray(b.boxes), np.asarray(a.boxes), atol=0.05)
        np.testing.assert_allclose(np.asarray(b.scores), np.asarray(a.scores), atol=1e-3)
