"""mmdet-style head loss tests for every SCRFD model with a loss."""

import pytest
import torch

from facescope.losses.criteria import build_criterion
from facescope.models import create_model, list_models
from facescope.structures import FaceTargets


def losses_of(model, images, targets):
    return build_criterion(model)(model(images), targets, tuple(images.shape[2:])).losses


def one_face():
    boxes = torch.tensor([[10.0, 12.0, 42.0, 50.0]])
    landmarks = torch.tensor([[[18.0, 25.0], [34.0, 25.0], [26.0, 33.0], [20.0, 42.0], [32.0, 42.0]]])
    return FaceTargets(boxes, landmarks, torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("name", list_models("scrfd_*"))
def test_empty_image_gives_zero_box_loss_and_positive_cls_loss(name):
    model = create_model(name).train()
    images = torch.randn(1, 3, 64, 64)
    empty = losses_of(model, images, [FaceTargets.from_boxes(torch.zeros(0, 4))])
    assert empty["cls"].item() > 0
    assert empty["box"].item() == 0.0
    assert empty.get("landmark", torch.tensor(0.0)).item() == 0.0
    face = losses_of(model, images, [one_face()])
    assert all(value.item() > 0 for value in face.values()), face
    assert ("landmark" in face) == model.has_landmarks


def test_faces_without_landmarks_do_not_train_the_landmark_branch():
    model = create_model("scrfd_500m_kps").train()
    target = one_face()
    target.landmark_valid[:] = False
    losses = losses_of(model, torch.randn(1, 3, 64, 64), [target])
    assert losses["landmark"].item() == 0.0 and losses["box"].item() > 0


def test_gradients_reach_every_parameter():
    model = create_model("scrfd_2.5g_kps").train()
    losses = losses_of(model, torch.randn(2, 3, 64, 64), [one_face(), one_face()])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
