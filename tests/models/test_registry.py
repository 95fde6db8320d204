"""Registry-wide tests: every registered architecture is covered automatically."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from facescope.errors import FacescopeError, UnknownModelError
from facescope.inference.postprocess import postprocess
from facescope.models import create_model, get_model_entry, list_models, register_model
from facescope.models.registry import build_on_meta
from facescope.models.spec import PostprocessSettings
from facescope.structures import Detections
from registry_params import every_model

ALL_MODELS = list_models()


def test_registry_is_populated_and_rejects_duplicates():
    assert {"scrfd_500m", "scrfd_1g", "scrfd_2.5g", "scrfd_10g", "scrfd_34g"} <= set(ALL_MODELS)
    with pytest.raises(ValueError, match="already registered"):
        entry = get_model_entry("scrfd_500m")
        register_model(
            "scrfd_500m",
            builder=entry.builder,
            family="scrfd",
            summary="dup",
            input_spec=entry.input_spec,
            head=entry.head,
            presets=entry.presets,
        )


def test_unknown_model_suggests_close_match():
    with pytest.raises(UnknownModelError, match=r"unknown model 'scrfd_2.5g_kp' \(did you mean 'scrfd_2.5g_kps'\?\)"):
        get_model_entry("scrfd_2.5g_kp")


@pytest.mark.parametrize("name", every_model())
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
        predictions = model.activate(model(images))
    settings = PostprocessSettings(score_thresh=0.0, max_detections=50)
    detections = postprocess(predictions, (64, 96), model.anchor_generator, model.coder, settings)
    assert len(detections) == 2
    for dets in detections:
        assert isinstance(dets, Detections) and 0 < len(dets) <= 50
        assert np.all(dets.scores[:-1] >= dets.scores[1:])  # sorted
        assert np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()
        assert (dets.landmarks is not None) == model.has_landmarks


@pytest.mark.parametrize("name", every_model())
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
    entry = get_model_entry(name)
    presets = entry.presets
    assert {"default", "official", "widerface"} <= set(presets)
    assert presets["widerface"].postprocess.score_thresh <= 0.02  # AP needs the low-score tail
    for spec in entry.weights:  # a release names the preset of its published numbers
        assert spec.preset in presets and presets[spec.preset].postprocess.score_thresh <= 0.02


@pytest.mark.parametrize("name", ALL_MODELS)
def test_built_model_takes_its_layout_from_the_catalogue_entry(name):
    """One source of truth: the torch model decodes with exactly what its entry declares."""
    entry = get_model_entry(name)
    model = build_on_meta(name)
    assert model.anchor_generator == entry.head.anchor_generator()
    assert model.anchor_generator.shapes == entry.head.anchors
    assert model.coder == entry.head.coder
    assert model.input_spec == entry.input_spec
    assert model.has_landmarks == entry.head.has_landmarks
    assert model.family == entry.family
    assert (model.score_activation, model.logit_scale) == (entry.head.score_activation, entry.head.logit_scale)
    with torch.no_grad():  # the activation the entry declares: 1 logit (sigmoid) or 2 (softmax)
        assert model.scores_from_logits(torch.zeros(1, 3, entry.head.num_logits)).shape == (1, 3)


def test_protocol_preset_comes_with_the_weights():
    assert get_model_entry("scrfd_500m_kps").protocol_preset() == "widerface"
    assert get_model_entry("retinaface_mnet025").protocol_preset() == "official"
    assert get_model_entry("scrfd_500m").protocol_preset() == "widerface"  # no release: the family's protocol


def test_overrides_go_to_the_builder_and_unknown_ones_are_named():
    entry = get_model_entry("retinaface_paper_r50")
    assert "deformable" in entry.accepted_overrides()
    with torch.device("meta"):
        plain = entry.build(deformable=False)
    assert plain.deformable is False
    with pytest.raises(FacescopeError, match=r"does not accept 'deformabel' \(did you mean 'deformable'\?\); accepted overrides: \['deformable', 'mesh_topology'\]"):
        create_model("retinaface_paper_r50", deformabel=False)
    with pytest.raises(FacescopeError, match="accepted overrides: none"):
        create_model("scrfd_500m", width=2)


def test_catalogue_loads_without_torch():
    code = (
        "import sys; from facescope.models.registry import list_models, get_model_entry; "
        "names = list_models(); e = get_model_entry('retinaface_paper_r50'); e.head.anchor_generator().grid((64, 64)); "
        "print(len(names), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(ALL_MODELS)), "False"]
