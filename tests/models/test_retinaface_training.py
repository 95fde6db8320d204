"""RetinaFace multi-task loss through the models, and short CPU training runs."""

import pytest
import torch

from facescope.errors import ConfigError
from facescope.losses.criteria import build_criterion
from facescope.losses.multibox import PAPER_LOSS, PORT_LOSS
from facescope.models import create_model
from facescope.models.mesh_topology import icosphere_topology, save_mesh_topology
from facescope.models.retinaface import build_retinaface_paper
from facescope.structures import FaceTargets


def _one_face(valid: bool = True) -> FaceTargets:
    box = torch.tensor([[20.0, 24.0, 52.0, 60.0]])
    points = torch.tensor([[[30.0, 36.0], [44.0, 36.0], [37.0, 44.0], [31.0, 52.0], [43.0, 52.0]]])
    return FaceTargets(box, points, torch.full((1, 5), valid))


def _no_face() -> FaceTargets:
    return FaceTargets.from_boxes(torch.zeros((0, 4)))


def _losses(model, images, targets, criterion=None):
    criterion = criterion or build_criterion(model)
    return criterion(model(images), targets, tuple(images.shape[2:])).losses


def test_port_model_default_loss_is_the_ports():
    model = create_model("retinaface_mnet025")
    assert build_criterion(model).config == PORT_LOSS
    assert (PORT_LOSS.pos_iou, PORT_LOSS.force_match_min_iou, PORT_LOSS.neg_pos_ratio, PORT_LOSS.box_weight) == (0.35, 0.2, 7, 2.0)
    paper = build_retinaface_paper(50, deformable=False)  # built outside the registry: the family has two criteria
    with pytest.raises(ConfigError, match="built outside the registry .* \\(retinaface_paper, retinaface_port\\): name one in loss.criterion"):
        build_criterion(paper)
    assert build_criterion(create_model("retinaface_paper_r50", deformable=False)).config == PAPER_LOSS
    assert build_criterion(paper, {"criterion": "retinaface_paper"}).config == PAPER_LOSS
    assert (PAPER_LOSS.pos_iou, PAPER_LOSS.neg_iou, PAPER_LOSS.neg_pos_ratio) == (0.5, 0.3, 3)
    assert (PAPER_LOSS.cls_weight, PAPER_LOSS.box_weight, PAPER_LOSS.landmark_weight, PAPER_LOSS.pixel_weight) == (1, 0.25, 0.1, 0.01)


@pytest.mark.parametrize(("name", "size"), [("retinaface_mnet025", 64), ("retinaface_paper_r50", 128)])
def test_empty_image_gives_zero_box_and_landmark_loss_and_a_face_gives_all_positive(name, size):
    torch.manual_seed(0)
    model = create_model(name).train()
    criterion = build_criterion(model, {"min_negatives": 3})  # the paper's rule for images without faces
    images = torch.randn(1, 3, size, size)  # (the paper's P6 must be > 1x1 for training-mode BN)
    empty = _losses(model, images, [_no_face()], criterion)
    assert empty["box"].item() == 0.0 and empty["landmark"].item() == 0.0
    assert empty["cls"].item() > 0
    one = _losses(model, images, [_one_face()], criterion)
    assert all(v.item() > 0 for v in one.values()), one


def test_port_rule_an_image_without_faces_contributes_nothing():
    model = create_model("retinaface_mnet025").train()
    losses = _losses(model, torch.randn(1, 3, 64, 64), [_no_face()])
    assert [v.item() for v in losses.values()] == [0.0, 0.0, 0.0]


def test_face_without_landmarks_trains_boxes_only():
    model = create_model("retinaface_mnet025").train()
    losses = _losses(model, torch.randn(1, 3, 64, 64), [_one_face(valid=False)])
    assert losses["landmark"].item() == 0.0 and losses["box"].item() > 0


def _train(model: torch.nn.Module, images: torch.Tensor, targets: list[FaceTargets], steps: int) -> list[dict[str, float]]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    criterion = build_criterion(model)
    history = []
    for _ in range(steps):
        losses = _losses(model, images, targets, criterion)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    return history


def _paper_targets() -> list[FaceTargets]:
    no_landmarks = torch.zeros(1, 5, dtype=torch.bool)
    return [_one_face(), FaceTargets(torch.tensor([[60.0, 50.0, 110.0, 112.0]]), torch.zeros(1, 5, 2), no_landmarks)]


def _check_paper_training(deformable: bool, size: int, steps: int, tmp_path) -> None:
    torch.manual_seed(0)
    topology = save_mesh_topology(icosphere_topology(3), tmp_path / "ico.npz")
    model = create_model("retinaface_paper_r50", deformable=deformable, mesh_topology=topology).train()
    images = torch.randn(2, 3, size, size) * 50
    targets = [FaceTargets(t.boxes * size / 128, t.landmarks * size / 128, t.landmark_valid) for t in _paper_targets()]
    before = model.head.dense_conv.weight.detach().clone()
    history = _train(model, images, targets, steps=steps)
    assert set(history[0]) == {"cls", "box", "landmark", "pixel"}
    assert all(torch.isfinite(torch.tensor(v)) for step in history for v in step.values())
    assert all(step["pixel"] > 0 and step["landmark"] > 0 for step in history)
    assert not torch.equal(before, model.head.dense_conv.weight)  # the pixel loss reaches the head


def test_paper_variant_with_mesh_branch_trains_a_few_steps_with_finite_losses(tmp_path):
    _check_paper_training(deformable=False, size=128, steps=3, tmp_path=tmp_path)


def test_paper_variant_with_deformable_convs_trains(tmp_path):
    _check_paper_training(deformable=True, size=64, steps=1, tmp_path=tmp_path)  # CPU deform-conv backward is slow


@pytest.mark.slow
def test_paper_variant_full_configuration_trains_at_128(tmp_path):
    _check_paper_training(deformable=True, size=128, steps=3, tmp_path=tmp_path)


def test_port_model_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = create_model("retinaface_mnet025").train()
    images = torch.randn(2, 3, 96, 96) * 50
    history = _train(model, images, [_one_face(), _one_face()], steps=8)
    totals = [sum(step.values()) for step in history]
    assert totals[-1] < totals[0]
