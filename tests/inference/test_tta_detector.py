"""Test-time augmentation through the Detector, on both backends, with the official weights and real
WIDER FACE images: flip equivariance, "a single pass is the TTA of one pass", batching per pass size,
the per-pass pixel budget, fixed-size ONNX files and unknown protocol names."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from facescope.errors import FacescopeError
from facescope.inference.detector import Detector
from facescope.inference.tta import Factors, MergeSpec, TTASpec, UnknownTTAProtocolError
from facescope.structures import LANDMARK_FLIP_PAIRS, Detections

pytestmark = pytest.mark.shared

# Flip tolerance, measured: with the "flip" protocol the flipped image runs exactly the two pass images
# of the original, swapped, so the candidates are the same numbers and only the mirror arithmetic
# ``W - x`` (float32, W = 1024 on WIDER) differs between the two routes: measured max 1.2e-4 px on boxes
# and landmarks (one float32 ulp at 1024), scores bit-equal, on 6 WIDER images with each backend.
# 1e-3 px allows eight ulps. Without TTA the same comparison differs by up to 69 px (SCRFD, original
# size) or 11 px (RetinaFace): the networks are not mirror-symmetric, so a single pass is not tested for it.
FLIP_ATOL_PX = 1e-3

# Building the torch RetinaFace model alone takes ~7 s on a quiet 2-core machine (30 s on a busy one),
# so the torch cases run with `pytest -m slow`; the default suite covers torch candidates in
# tests/inference/test_postprocess.py (box voting of torch candidates) and the onnxruntime cases here.
BACKENDS = ["onnxruntime", pytest.param("torch", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def scrfd_path() -> Path:
    from tests.conftest import shared_path

    return shared_path("weights/scrfd/scrfd_2.5g_kps.onnx")


_DETECTORS: dict[tuple, Detector] = {}


def _backend_detector(backend: str, scrfd_path: Path, retinaface_path: Path, **kwargs) -> Detector:
    """SCRFD-2.5GF (official ONNX) on onnxruntime, RetinaFace-mnet0.25 (official .pth) on torch;
    built once per settings in this module (building the torch model is the slow part)."""
    key = (backend, *sorted(kwargs.items()))
    if key not in _DETECTORS:
        if backend == "onnxruntime":
            _DETECTORS[key] = Detector("scrfd_2.5g_kps", scrfd_path, backend="onnxruntime", **kwargs)
        else:
            _DETECTORS[key] = Detector("retinaface_mnet025", retinaface_path, backend="torch", **kwargs)
    return _DETECTORS[key]


@pytest.fixture(scope="module", autouse=True)
def _forget_detectors():
    yield
    _DETECTORS.clear()


def _mirror(detections: Detections, width: int) -> Detections:
    """Detections of an image mirrored about its width (``x' = W - x``, left/right landmarks swapped)."""
    boxes = detections.boxes.copy()
    boxes[:, 0], boxes[:, 2] = width - detections.boxes[:, 2], width - detections.boxes[:, 0]
    landmarks = detections.landmarks.copy()
    landmarks[..., 0] = width - landmarks[..., 0]
    for left, right in LANDMARK_FLIP_PAIRS:
        landmarks[:, [left, right]] = landmarks[:, [right, left]]
    return Detections(boxes, detections.scores, landmarks)


def _read(path: Path, backend: str = "onnxruntime") -> np.ndarray:
    """A WIDER image; for the torch backend (RetinaFace at the image's own size, several seconds a
    pass on a busy CPU) halved to 512 px wide, so the tests stay fast."""
    import cv2

    from facescope.inference.image_io import read_image

    image = read_image(path)
    if backend == "torch":
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


def _best_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For every box of ``boxes [N, 4]``, its largest IoU with ``others [M, 4]`` (continuous areas)."""
    low = np.maximum(boxes[:, None, :2], others[None, :, :2])
    high = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area = lambda b: np.prod(b[:, 2:] - b[:, :2], axis=1)  # noqa: E731
    return (inter / (area(boxes)[:, None] + area(others)[None, :] - inter)).max(axis=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_protocol_detections_of_a_mirrored_image_are_the_mirrored_detections(
    backend, scrfd_path, retinaface_mnet_weights, wider_val_images
):
    # the WIDER protocol preset (score >= 0.02): hundreds of candidates, many voting clusters
    detector = _backend_detector(backend, scrfd_path, retinaface_mnet_weights, preset="widerface", tta="flip")
    for path in wider_val_images[:2]:
        image = _read(path, backend)
        found = detector.detect(image, color_order="bgr")
        mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]), color_order="bgr")
        expected = _mirror(mirrored, image.shape[1])
        assert len(found) == len(expected) > 30, path.name
        # same faces in the same order: scores bit-equal (or equal ties, compared as sorted sets)
        np.testing.assert_array_equal(found.scores, expected.scores)
        order_found = np.lexsort((found.boxes[:, 0], -found.scores))
        order_expected = np.lexsort((expected.boxes[:, 0], -expected.scores))
        np.testing.assert_allclose(found.boxes[order_found], expected.boxes[order_expected], rtol=0, atol=FLIP_ATOL_PX)
        np.testing.assert_allclose(
            found.landmarks[order_found], expected.landmarks[order_expected], rtol=0, atol=FLIP_ATOL_PX
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_single_pass_is_the_tta_of_one_pass(backend, scrfd_path, retinaface_mnet_weights, wider_val_images):
    """One unflipped pass at the detector's own scale, merged by the preset's NMS, gives exactly the
    single-pass detections (original-size presets: the pass image is the image itself)."""
    post = _backend_detector(backend, scrfd_path, retinaface_mnet_weights, preset="widerface").preset.postprocess
    one_pass = TTASpec(
        name="one_pass",
        scales=Factors((1.0,)),
        flip=False,
        merge=MergeSpec("nms", iou=post.nms_thresh, pixel_offset=post.nms_pixel_offset),
    )
    size = "original"
    plain = _backend_detector(backend, scrfd_path, retinaface_mnet_weights, preset="widerface", input_size=size)
    tta = _backend_detector(backend, scrfd_path, retinaface_mnet_weights, preset="widerface", input_size=size, tta=one_pass)
    image = _read(wider_val_images[0], backend)
    expected, got = plain.detect(image, color_order="bgr"), tta.detect(image, color_order="bgr")
    assert len(expected) > 50  # score >= 0.02: a real crowd of candidates, not a trivial case
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_allclose(got.boxes, expected.boxes, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.landmarks, expected.landmarks, rtol=0, atol=1e-4)
    assert "TTA 'one_pass'" in tta.describe() and "TTA" not in plain.describe()


class _CountingBackend:
    def __init__(self, backend) -> None:
        self.backend, self.shapes = backend, []
        self.name = backend.name

    def __call__(self, batch):
        self.shapes.append(tuple(batch.shape))
        return self.backend(batch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiscale_end_to_end_batches_each_scale_with_its_mirror(
    backend, scrfd_path, retinaface_mnet_weights, wider_val_images
):
    single = _backend_detector(backend, scrfd_path, retinaface_mnet_weights)
    detector = _backend_detector(backend, scrfd_path, retinaface_mnet_weights, tta="multiscale")
    detector.backend = counting = _CountingBackend(detector.backend)
    image = _read(wider_val_images[0], backend)
    height, width = image.shape[:2]
    try:
        found = detector.detect(image, color_order="bgr")
    finally:
        detector.backend = counting.backend
    # three scales (0.5, 1, 1.5 of the preset's own), each with its mirror in one batch of two
    assert [shape[0] for shape in counting.shapes] == [2, 2, 2]
    scale = detector.detector_scale((height, width))
    assert [shape[3] for shape in counting.shapes][1] >= round(width * scale)
    reference = single.detect(image, color_order="bgr")
    assert found.scores.min() >= detector.preset.postprocess.score_thresh
    assert np.all(np.diff(found.scores) <= 0)
    assert found.boxes[:, 0].min() > -0.1 * width and found.boxes[:, 2].max() < 1.1 * width
    # every confident single-pass face is found again (IoU >= 0.5) by the multi-scale run
    confident = reference.boxes[reference.scores >= 0.8]
    assert len(confident) > 5
    assert _best_iou(confident, found.boxes).min() >= 0.5


def test_a_pass_over_the_pixel_budget_is_capped_with_one_note(scrfd_path, wider_val_images, caplog, capsys):
    """The budget is shrunk here so that real passes exceed it: they run capped (the backend never
    sees more pixels than the budget), one note per capped pass is logged once, and the progress
    bar shows for an image with many passes."""
    budget = 300_000
    detector = Detector("scrfd_2.5g_kps", scrfd_path, tta="multiscale", max_pass_pixels=budget, tta_progress=True)
    detector.backend = counting = _CountingBackend(detector.backend)
    image = _read(wider_val_images[0])
    with caplog.at_level(logging.WARNING, logger="facescope.tta"):
        detector.detect(image, color_order="bgr")
        detector.detect(image, color_order="bgr")
    assert max(shape[2] * shape[3] for shape in counting.shapes) <= budget * 1.1  # + stride padding
    notes = detector.last_tta_notes
    assert notes and all("per-pass budget" in note for note in notes)
    logged = [r.getMessage() for r in caplog.records if r.name == "facescope.tta"]
    assert sorted(logged) == sorted(set(notes))  # shown once although the image ran twice
    assert "TTA 'multiscale'" in capsys.readouterr().err


def test_unknown_protocol_is_refused_before_the_weights_are_read() -> None:
    with pytest.raises(UnknownTTAProtocolError, match=r"unknown TTA protocol 'dsdf' \(did you mean 'dsfd'\?\)"):
        Detector("scrfd_2.5g_kps", "/no/such/file.onnx", tta="dsdf")


def test_fixed_size_onnx_letterboxes_a_fitting_protocol_and_refuses_a_larger_one(scrfd_onnx, wider_val_images):
    import cv2

    static = scrfd_onnx["scrfd_500m_kps_static640"]
    with pytest.raises(FacescopeError, match=r"fixed 640x640 input but TTA protocol 'multiscale' needs 960x960"):
        Detector("scrfd_500m_kps", static, tta="multiscale")
    # 1024x768 -> 640x480 exactly, so the preset's letterbox and the TTA pass resize to the same pixels
    image = cv2.resize(_read(wider_val_images[0]), (1024, 768), interpolation=cv2.INTER_AREA)
    plain = Detector("scrfd_500m_kps", static, preset="widerface")
    post = plain.preset.postprocess
    one_pass = TTASpec("one_pass", Factors((1.0,)), False, MergeSpec("nms", post.nms_thresh, pixel_offset=post.nms_pixel_offset))
    tta = Detector("scrfd_500m_kps", static, preset="widerface", tta=one_pass)
    expected, got = plain.detect(image, color_order="bgr"), tta.detect(image, color_order="bgr")
    # the 640x480 pass is placed in the file's fixed 640x640 input (bottom padding): the single pass, exactly
    assert len(expected) > 50
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_allclose(got.boxes, expected.boxes, rtol=0, atol=1e-4)
    flipped = Detector("scrfd_500m_kps", static, tta="flip").detect(image, color_order="bgr")
    assert len(flipped) > 5
