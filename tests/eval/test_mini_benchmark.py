"""The 38-image WIDER FACE mini-benchmark with the official SCRFD weights (regression figures)."""

from __future__ import annotations

import pytest

from facescope.eval.widerface_io import read_wider_mat
from facescope.eval.widerface_runner import evaluate_detector_on_widerface

# measured with this code (torch backend, preset "widerface", 38 images of ../shared/data)
EXPECTED = {
    "scrfd_500m_kps": {"easy": 0.8639884688097065, "medium": 0.8714119399881268, "hard": 0.7187882888954199},
    "scrfd_2.5g_kps": {"easy": 0.8885466684059699, "medium": 0.8792607568250538, "hard": 0.8041225226744477},
}


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_scrfd_mini_benchmark(model, shared_data, scrfd_onnx, tmp_path) -> None:
    from facescope.inference.detector import Detector

    detector = Detector(model, scrfd_onnx[model], preset="widerface", threads=1)
    gt = read_wider_mat(shared_data / "widerface/ground_truth")
    result = evaluate_detector_on_widerface(detector, shared_data / "widerface/WIDER_val/images", gt, tmp_path, progress=False)
    assert result.mode == "mini-benchmark" and result.num_images == 38
    assert result.num_faces == {"easy": 110, "medium": 207, "hard": 756}  # SOURCES.md
    for subset, value in EXPECTED[model].items():
        assert result.ap[subset] == pytest.approx(value, abs=1e-6)
