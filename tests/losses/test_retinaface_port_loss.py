"""The ``retinaface_mnet025`` loss equals the port's MultiBoxLoss (independent re-implementation)."""

import pytest
import torch

from oracles.pytorch_retinaface import multibox_loss as port_multibox_loss
from facescope.losses.criteria import build_criterion
from facescope.models import create_model
from facescope.structures import FaceTargets


def _faces(generator: torch.Generator, count: int, size: int, with_landmarks: bool) -> FaceTargets:
    centres = torch.rand(count, 2, generator=generator) * size * 0.8 + size * 0.1
    sides = torch.rand(count, 1, generator=generator) * size * 0.3 + 6  # 6 .. 54 px: force-matched to huge
    boxes = torch.cat([centres - sides / 2, centres + sides / 2], 1).clamp(0, size)
    points = centres[:, None, :] + (torch.rand(count, 5, 2, generator=generator) - 0.5) * sides[:, None, :]
    return FaceTargets(boxes, points, torch.full((count, 5), with_landmarks))


def _port_target(faces: FaceTargets, size: int) -> torch.Tensor:
    label = torch.where(faces.landmark_valid.all(1), 1.0, -1.0)[:, None]
    landmarks = torch.where(faces.landmark_valid[..., None], faces.landmarks, torch.full_like(faces.landmarks, -1.0 * size))
    return torch.cat([faces.boxes / size, landmarks.reshape(-1, 10) / size, label], 1)


def _crafted_faces() -> FaceTargets:
    """Faces that exercise the port's matching rules (priors of level 0: 16 and 32 px at (j + 0.5) * 8)."""
    boxes = torch.tensor([
        [36.0, 36.0, 52.0, 52.0],  # exactly the 16 px prior at (44, 44)
        [42.0, 42.0, 46.0, 46.0],  # 4 px inside it: best IoU 0.06 < 0.2, retargets that prior (quirk)
        [99.75, 99.75, 108.25, 108.25],  # 8.5 px at (104, 104): best IoU 0.28, positive only by force-match
    ])  # fmt: skip
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return FaceTargets(boxes, centres[:, None, :].repeat(1, 5, 1) + 1.0, torch.ones(3, 5, dtype=torch.bool))


def _cat(a: FaceTargets, b: FaceTargets) -> FaceTargets:
    return FaceTargets(torch.cat([a.boxes, b.boxes]), torch.cat([a.landmarks, b.landmarks]), torch.cat([a.landmark_valid, b.landmark_valid]))


def test_loss_equals_the_ports_multibox_loss():
    size = 160
    generator = torch.Generator().manual_seed(3)
    model = create_model("retinaface_mnet025").train()
    first = _cat(_faces(generator, 4, size, True), _crafted_faces())
    targets = [first, _faces(generator, 3, size, False), _faces(generator, 2, size, True)]
    torch.manual_seed(0)
    outputs = model(torch.randn(3, 3, size, size) * 60)
    ours = build_criterion(model)(outputs, targets, (size, size)).losses
    priors = model.anchor_generator.priors((size, size))
    normalised = torch.cat([priors.centers, priors.sizes], 1) / size  # (cx, cy, w, h) / image size
    predictions = (torch.cat(outputs.box_regs, 1), torch.cat(outputs.cls_logits, 1), torch.cat(outputs.landmark_regs, 1))
    loss_l, loss_c, loss_landm = port_multibox_loss(predictions, normalised, [_port_target(t, size) for t in targets])
    assert ours["box"].item() == pytest.approx(2.0 * loss_l.item(), rel=1e-5)
    assert ours["cls"].item() == pytest.approx(loss_c.item(), rel=1e-5)
    assert ours["landmark"].item() == pytest.approx(loss_landm.item(), rel=1e-5)
    assert loss_l.item() > 0 and loss_landm.item() > 0
    # The crafted faces matter: without the port's quirks the losses differ.
    for change in ({"retarget_below_floor": False}, {"force_match_min_iou": None}):
        changed = build_criterion(model, change)(outputs, targets, (size, size)).losses
        assert changed["box"].item() != pytest.approx(2.0 * loss_l.item(), rel=1e-5)
