"""Detector end to end, against the official insightface pipeline on real images."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facescope import Detector
from oracles.insightface_scrfd import InsightfaceSCRFD
from facescope.errors import FacescopeError, WeightsError

pytestmark = pytest.mark.shared


@pytest.mark.parametrize("key,arch", [("scrfd_500m_kps", "scrfd_500m_kps"), ("scrfd_2.5g_kps", "scrfd_2.5g_kps"),
                                      ("scrfd_500m_kps_static640", "scrfd_500m_kps")])
def test_detections_equal_official_pipeline(key, arch, scrfd_onnx, wider_val_images, shared_data):
    reference = InsightfaceSCRFD(scrfd_onnx[key])
    detector = Detector(arch, scrfd_onnx[key], preset="official")
    images = [shared_data / "images/crowd/t1.jpg"] + wider_val_images
    total = 0
    for path in images:
        image = cv2.imread(str(path))
        ref_dets, ref_kps = reference.detect(image, thresh=0.5, nms_thresh=0.4)
        ours = detector.detect(image, color_order="bgr")
        assert len(ours) == len(ref_dets), path
        total += len(ours)
        if len(ours):
            assert np.abs(ours.boxes - ref_dets[:, :4]).max() <= 0.01
            assert np.abs(ours.scores - ref_dets[:, 4]).max() <= 1e-4
            assert np.abs(ours.landmarks - ref_kps).max() <= 0.01
    assert total > 100


def test_t1_has_six_faces_with_any_input_type(scrfd_onnx, shared_data):
    path = shared_data / "images/crowd/t1.jpg"
    detector = Detector("scrfd_2.5g_kps", scrfd_onnx["scrfd_2.5g_kps"])
    by_path = detector.detect(path)
    bgr = cv2.imread(str(path))
    by_rgb = detector.detect(bgr[:, :, ::-1].copy(), color_order="rgb")
    by_pil = detector.detect(Image.open(path))
    assert len(by_path) == len(by_rgb) == len(by_pil) == 6
    assert np.allclose(by_path.boxes, by_rgb.boxes) and np.allclose(by_path.boxes, by_pil.boxes, atol=0.5)
    assert by_path.landmarks.shape == (6, 5, 2)
    # every landmark inside its box
    boxes, landmarks = by_path.boxes[:, None, :], by_path.landmarks
    assert ((landmarks >= boxes[..., :2]) & (landmarks <= boxes[..., 2:])).all()


def test_batch_matches_single_and_original_size(scrfd_onnx, wider_val_images):
    detector = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], batch_size=3)
    singles = [detector.detect(p) for p in wider_val_images[:5]]
    batched = detector.detect_batch(wider_val_images[:5])
    for a, b in zip(singles, batched):
        assert len(a) == len(b) and np.allclose(a.boxes, b.boxes, atol=1e-3)
    original = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], input_size="original", score_thresh=0.3)
    assert len(original.detect(wider_val_images[0])) > 0


def test_onnxruntime_backend_equals_torch(scrfd_onnx, shared_data):
    path = shared_data / "images/crowd/t1.jpg"
    torch_dets = Detector("scrfd_2.5g_kps", scrfd_onnx["scrfd_2.5g_kps"], backend="torch").detect(path)
    torch.set_num_threads(2)
    ort = Detector("scrfd_2.5g_kps", scrfd_onnx["scrfd_2.5g_kps"], threads=2)  # "auto": onnxruntime for .onnx
    ort_dets = ort.detect(path)
    assert ort.backend.name == "onnxruntime" and ort.model is None
    assert torch.get_num_threads() == 2  # the onnxruntime path leaves PyTorch's process-wide setting alone
    assert len(torch_dets) == len(ort_dets) == 6
    assert np.abs(torch_dets.boxes - ort_dets.boxes).max() < 0.01


def test_errors(scrfd_onnx, tmp_path):
    with pytest.raises(FacescopeError, match=r"unknown preset 'oficial' \(did you mean 'official'\?\)"):
        Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], preset="oficial")
    with pytest.raises(WeightsError, match="has no pretrained weights"):
        Detector("scrfd_500m")
    torch.save({}, tmp_path / "model.pth")
    with pytest.raises(FacescopeError, match="needs an .onnx"):
        Detector("scrfd_500m_kps", tmp_path / "model.pth", backend="onnxruntime")
    with pytest.raises(WeightsError, match=r"not a format facescope reads; facescope reads \.onnx files and PyTorch checkpoints"):
        Detector("scrfd_500m_kps", __file__)
    with pytest.raises(FacescopeError, match="unknown backend 'tensorrt'"):
        Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], backend="tensorrt")
