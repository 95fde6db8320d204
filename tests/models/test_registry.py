"""Registry-wide tests: every registered architecture is covered automatically."""

import pytest
import torch

from facescope.errors import UnknownModelError
from facescope.models import create_model, get_model_entry, list_models, register_model
from facescope.models.spec import PostprocessSettings
from facescope.structures import Detections

ALL_MODELS = list_models()


def test_registry_is_populated_and_rejects_duplicates():
    assert {"scrfd_500m", "scrfd_1g", "scrfd_2.5g", "scrfd_10g", "scrfd_34g"} <= set(ALL_MODELS)
    with pytest.raises(ValueError, match="already registered"):
        register_model("scrfd_500m", family="scrfd", summary="dup")(lambda: None)


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownModelError, match=r"unknown model 'scrfd_2.5g_kp' \(did you mean 'scrfd_2.5g_kps'\?\)"):
        get_model_entry("scrfd_2.5g_kp")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward_and_postprocess(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    images = torch.randn(2, 3, 64, 96, requires_grad=True)
    outputs = model(images)
    priors = model.anchor_generator.priors((64, 96))
    assert sum(t.shape[1] for t in outputs.cls_logits) == len(priors)
    assert all(t.shape[0] == 2 and t.shape[2] == 4 for t in outputs.box_regs)
    assert (outputs.landmark_regs is not None) == model.has_landmarks
    total = sum(t.sum() for t in outputs.cls_logits + outputs.box_regs)
    assert torch.isfinite(total)
    total.backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()

    model.eval()
    with torch.no_grad():
        detections = model.postprocess(model(images), (64, 96), PostprocessSettings(score_thresh=0.0, max_detections=50))
    assert len(detections) == 2
    for dets in detections:
        assert isinstance(dets, Detections) and 0 < len(dets) <= 50
        assert torch.all(dets.scores[:-1] >= dets.scores[1:])  # sorted
        assert torch.isfinite(dets.boxes).all() and torch.isfinite(dets.scores).all()
        assert (dets.landmarks is not None) == model.has_landmarks


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_does_not_depend_on_training_mode_flag(name):
    """forward returns the same structure in train and eval mode (only BN statistics differ)."""
    model = create_model(name)
    with torch.no_grad():
        # Two images: a stride-64 level (RetinaFace paper P6) is 1x1 at 64x64, and batch-norm in
        # training mode needs more than one value per channel.
        eval_out = model.eval()(torch.zeros(2, 3, 64, 64))
        train_out = model.train()(torch.zeros(2, 3, 64, 64))
    assert type(eval_out) is type(train_out)
    assert [t.shape for t in eval_out.box_regs] == [t.shape for t in train_out.box_regs]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_family_has_the_common_presets(name):
    """`detect` uses 'default', parity tests 'official', `facescope eval widerface` 'widerface'."""
    from facescope.models.registry import build_on_meta

    presets = build_on_meta(name).presets
    assert {"default", "official", "widerface"} <= set(presets)
    assert presets["widerface"].postprocess.score_thresh <= 0.02  # AP needs the low-score tail
