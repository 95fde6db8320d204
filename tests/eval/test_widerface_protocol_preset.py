"""Evaluating a Detector on WIDER FACE from Python follows the protocol's preset or says why not."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from facescope.eval.widerface_runner import (
    ProtocolPresetError,
    evaluate_detector_on_widerface,
    protocol_preset_mismatch,
)
from facescope.models.retinaface import RETINAFACE_PRESETS
from facescope.models.scrfd import SCRFD_PRESETS


def detector_like(presets: dict, preset: str, score_thresh: float | None = None) -> SimpleNamespace:
    """The attributes of a Detector the check reads (a real one is used in the shared-data test)."""
    effective = presets[preset].with_overrides(score_thresh=score_thresh)
    return SimpleNamespace(preset=effective, preset_name=preset, entry=SimpleNamespace(presets=presets), model_name="scrfd_500m_kps")


def test_default_preset_is_refused_with_the_differences_and_the_fix(tmp_path) -> None:
    detector = detector_like(SCRFD_PRESETS, "default")
    with pytest.raises(ProtocolPresetError) as caught:
        # the folder does not exist: the refusal comes before any file is touched
        evaluate_detector_on_widerface(detector, tmp_path / "absent", tmp_path / "absent_gt", progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "postprocess.score_thresh 0.5 (protocol: 0.02)" in message
    assert "postprocess.nms_thresh 0.4 (protocol: 0.45)" in message
    assert "resize.rounding 'floor' (protocol: 'round')" in message
    assert "preset='widerface'" in message and "require_protocol_preset=False" in message
    assert not any(tmp_path.iterdir())


def test_protocol_preset_passes_and_an_override_does_not() -> None:
    assert protocol_preset_mismatch(detector_like(SCRFD_PRESETS, "widerface")) is None
    overridden = detector_like(SCRFD_PRESETS, "widerface", score_thresh=0.3)
    assert protocol_preset_mismatch(overridden) == "postprocess.score_thresh 0.3 (protocol: 0.02)"
    # RetinaFace's "official" preset is its WIDER FACE protocol: same settings, accepted
    assert protocol_preset_mismatch(detector_like(RETINAFACE_PRESETS, "official")) is None
    assert protocol_preset_mismatch(object()) is None  # not a Detector: evaluated as it is


@pytest.mark.shared
def test_a_real_detector_is_refused_or_labelled(shared_data, scrfd_onnx, tmp_path) -> None:
    from facescope.inference.detector import Detector

    source = sorted((shared_data / "widerface/WIDER_val/images").rglob("*.jpg"))[:2]
    for path in source:
        (tmp_path / "images" / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "images" / path.parent.name / path.name)
    detector = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], preset="default", threads=1)
    with pytest.raises(ProtocolPresetError, match=r"Detector\('scrfd_500m_kps', weights=..., preset='widerface'\)"):
        evaluate_detector_on_widerface(detector, tmp_path / "images", shared_data / "widerface/ground_truth", progress=False)
    result = evaluate_detector_on_widerface(
        detector, tmp_path / "images", shared_data / "widerface/ground_truth", None, progress=False,
        challenge=False, require_protocol_preset=False,
    )
    assert result.num_images == 2
    (note,) = [note for note in result.notes if note.startswith("not the WIDER FACE protocol preset 'widerface': ")]
    assert "postprocess.score_thresh 0.5 (protocol: 0.02)" in note


def test_a_tta_run_is_not_the_single_pass_protocol() -> None:
    """The published SCRFD / RetinaFace-port numbers are single-pass (their presets name no protocol)."""
    from dataclasses import replace

    from facescope.inference.tta import TTA_PROTOCOLS

    assert all(preset.tta is None for preset in (*SCRFD_PRESETS.values(), *RETINAFACE_PRESETS.values()))
    with_tta = detector_like(SCRFD_PRESETS, "widerface")
    with_tta.preset = replace(with_tta.preset, tta=TTA_PROTOCOLS["flip"])
    assert protocol_preset_mismatch(with_tta) == "tta 'flip' (protocol: single pass)"
    without_presets = SimpleNamespace(preset=with_tta.preset)  # presets unknown: the TTA alone is the difference
    assert protocol_preset_mismatch(without_presets) == "tta 'flip' (protocol: single pass)"
