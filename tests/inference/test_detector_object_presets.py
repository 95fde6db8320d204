"""A Detector given a model object uses that model's registry entry's presets (create_model records the
name), and its family's presets only for a model built outside the registry."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

import facescope.inference.detector as detector_module  # noqa: E402
from facescope.inference.detector import Detector  # noqa: E402
from facescope.models import create_model, get_model_entry  # noqa: E402


@pytest.fixture
def family_presets_marked(monkeypatch: pytest.MonkeyPatch) -> float:
    """Family presets whose 'default' has a distinctive score threshold (0.123)."""
    entry = get_model_entry("retinaface_mnet025")
    marked = {"default": replace(entry.presets["default"], postprocess=replace(entry.presets["default"].postprocess, score_thresh=0.123))}
    monkeypatch.setattr(detector_module, "family_presets", lambda family: marked)
    return 0.123


def test_model_object_uses_its_own_entry_presets(family_presets_marked: float) -> None:
    model = create_model("retinaface_mnet025")
    assert model.registry_name == "retinaface_mnet025"
    detector = Detector(model, preset="default")
    assert detector.model_name == "retinaface_mnet025"
    assert detector.preset.postprocess.score_thresh == get_model_entry("retinaface_mnet025").presets["default"].postprocess.score_thresh
    assert detector.preset.postprocess.score_thresh != family_presets_marked


def test_model_object_outside_the_registry_uses_its_family_presets(family_presets_marked: float) -> None:
    model = create_model("retinaface_mnet025")
    del model.registry_name  # as a model constructed directly from its class
    detector = Detector(model, preset="default")
    assert detector.model_name == type(model).__name__
    assert detector.preset.postprocess.score_thresh == pytest.approx(family_presets_marked)
