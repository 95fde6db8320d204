"""Every registered model trains: its criterion gives finite losses that back-propagate, on an image
without faces and on one with a face (the mmdet head-test pattern, run over the whole registry)."""

import pytest
import torch
from torch import nn

from facescope.losses.criteria import build_criterion
from facescope.models import create_model, list_models
from facescope.models.registry import build_on_meta
from facescope.models.complexity import count_macs
from facescope.structures import FaceTargets
from registry_params import HEAVY, HEAVY_GMACS, every_model



def _test_size(name: str) -> int:
    # The paper's RetinaFace has a stride-64 level, which must be wider than 1x1 for training-mode BN;
    # the DSFD release has BN in its stride-128 extra layer and dsfd_mnet025 in its stride-128 fusion, ASFD in
    # its stride-128 lateral projection and AutoFEM ops.
    if name in ("dsfd_official", "dsfd_mnet025") or name.startswith("asfd"):
        return 256
    return 128 if name.startswith("retinaface_paper") else 64


def _on_meta(name: str) -> nn.Module:
    """The architecture without weights (shapes only): cheap for the heaviest models."""
    return build_on_meta(name).eval()


def _params(names):
    return every_model(names)


def _one_face(size: int) -> FaceTargets:
    scale = size / 64
    box = torch.tensor([[14.0, 12.0, 46.0, 50.0]]) * scale
    points = torch.tensor([[[22.0, 25.0], [38.0, 25.0], [30.0, 33.0], [24.0, 42.0], [36.0, 42.0]]]) * scale
    return FaceTargets(box, points, torch.ones(1, 5, dtype=torch.bool))


def _backward(model: nn.Module, criterion, images: torch.Tensor, target: FaceTargets):
    model.zero_grad(set_to_none=True)
    result = criterion(model(images), [target], tuple(images.shape[2:]))
    assert result.total.dim() == 0 and torch.isfinite(result.total), result.losses
    result.total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return result, sum(bool(g.ne(0).any()) for g in grads)


@pytest.mark.parametrize("name", _params(list_models()))
def test_criterion_on_empty_and_one_face_targets_is_finite_and_back_propagates(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    criterion = build_criterion(model)
    size = _test_size(name)
    images = torch.randn(1, 3, size, size) * 50

    empty, nonzero = _backward(model, criterion, images, FaceTargets.from_boxes(torch.zeros(0, 4)))
    assert empty.losses["box"].item() == 0.0
    assert empty.per_image["num_positive"].tolist() == [0] and empty.per_image["min_positive_score"].tolist() == [1.0]
    assert (nonzero > 0) == (empty.total.item() > 0)  # a non-zero loss reaches the weights

    face, nonzero = _backward(model, criterion, images, _one_face(size))
    assert face.losses["box"].item() > 0 and face.total.item() > 0
    assert nonzero > 0
    assert face.per_image["num_positive"].item() > 0
    assert 0.0 <= face.per_image["min_positive_score"].item() <= 1.0
    assert ("landmark" in face.losses) == model.has_landmarks


@pytest.mark.parametrize("name", list_models())
def test_every_model_declares_its_backbone_and_one_anchor_generator_per_shot(name):
    model = _on_meta(name)
    assert isinstance(model.backbone, nn.Module)
    # A submodule, or (where the checkpoint's keys keep the stages at the top, as the DSFD release) a
    # ModuleList of the model's own stage modules.
    parts = list(model.backbone) if isinstance(model.backbone, nn.ModuleList) else [model.backbone]
    assert all(any(module is part for module in model.children()) for part in parts)
    with torch.no_grad():  # training mode: ASFD computes its first (auxiliary) shot only when training
        outputs = model.train()(torch.zeros(1, 3, _test_size(name), _test_size(name), device="meta"))
    assert len(model.anchor_generators) == 1 + len(outputs.aux)


@pytest.mark.parametrize("name", sorted(set(list_models()) - HEAVY))
def test_models_outside_the_heavy_list_are_light(name):
    # Keeps HEAVY honest: a newly registered model that is heavy fails here until it is listed.
    assert count_macs(_on_meta(name), (480, 640)).gmacs < HEAVY_GMACS
