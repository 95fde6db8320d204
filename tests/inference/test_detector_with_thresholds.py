"""``Detector.with_thresholds``: a view on the same network with other thresholds finds what a
Detector built with those thresholds finds (the detection service runs a request's own thresholds on it)."""

from __future__ import annotations

import numpy as np
import pytest

from facescope import Detector
from facescope.errors import FacescopeError


@pytest.mark.shared
def test_a_threshold_view_equals_a_detector_built_with_the_thresholds(scrfd_onnx, shared_data) -> None:
    weights = scrfd_onnx["scrfd_500m_kps"]
    detector = Detector("scrfd_500m_kps", weights, threads=1, progress=False)
    view = detector.with_thresholds(0.2, 0.6)
    built = Detector("scrfd_500m_kps", weights, threads=1, progress=False, score_thresh=0.2, nms_thresh=0.6)
    assert view.backend is detector.backend and view.preset == built.preset
    assert detector.preset.postprocess.score_thresh == 0.5  # the original keeps its own
    image = str(shared_data / "widerface" / "WIDER_val" / "images" / "0--Parade" / "0_Parade_Parade_0_873.jpg")  # a crowd
    found, expected = view.detect(image), built.detect(image)
    assert len(found) == len(expected) > len(detector.detect(image))
    np.testing.assert_array_equal(found.boxes, expected.boxes)
    assert detector.with_thresholds() is detector
    with pytest.raises(FacescopeError, match=r"nms_thresh must be in \[0, 1\], got 1.5"):
        detector.with_thresholds(nms_thresh=1.5)
