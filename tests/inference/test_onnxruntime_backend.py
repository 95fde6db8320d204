"""onnxruntime backend == PyTorch backend, on official SCRFD files and on facescope exports."""

import numpy as np
import pytest
import torch

from facescope import Detector
from facescope.errors import FacescopeError, WeightsError
from facescope.export import export_onnx
from facescope.models import create_model

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def exported_500m_kps(scrfd_onnx, tmp_path_factory):
    """scrfd_500m_kps exported by facescope from the official weights (dynamic batch/height/width)."""
    path = tmp_path_factory.mktemp("export") / "scrfd_500m_kps_facescope.onnx"
    result = export_onnx("scrfd_500m_kps", path, weights=scrfd_onnx["scrfd_500m_kps"])
    assert result.max_abs_diff <= 1e-4  # trained weights: well inside timm's 1e-3
    return path


@pytest.fixture(scope="module")
def images(shared_data, wider_val_images):
    return [shared_data / "images/crowd/t1.jpg", shared_data / "images/crowd/worlds-largest-selfie.jpg"] + wider_val_images[:12]


def assert_same_detections(expected, actual, label):
    assert len(expected) == len(actual), label
    if len(expected):
        assert np.abs(expected.boxes - actual.boxes).max() <= 0.01, label
        assert np.abs(expected.scores - actual.scores).max() <= 1e-4, label
        assert np.abs(expected.landmarks - actual.landmarks).max() <= 0.01, label


@pytest.mark.parametrize("key", ["scrfd_500m_kps", "scrfd_500m_kps_static640", "scrfd_2.5g_kps", "facescope_export"])
def test_onnxruntime_equals_torch(key, scrfd_onnx, exported_500m_kps, images):
    """Official dynamic (numbered, unbatched outputs), official static-640 (named, batched) and our export."""
    path = exported_500m_kps if key == "facescope_export" else scrfd_onnx[key]
    arch = "scrfd_2.5g_kps" if key == "scrfd_2.5g_kps" else "scrfd_500m_kps"
    torch_detector = Detector(arch, path, preset="official", threads=1, backend="torch")
    ort_detector = Detector(arch, path, preset="official", backend="onnxruntime", threads=1)
    total = 0
    for image in images:
        expected, actual = torch_detector.detect(image), ort_detector.detect(image)
        assert_same_detections(expected, actual, f"{key} {image.name}")
        total += len(actual)
    assert total > 100


def test_export_runs_batched_and_at_any_size(exported_500m_kps, scrfd_onnx, images):
    ort_detector = Detector("scrfd_500m_kps", exported_500m_kps, backend="onnxruntime", batch_size=4, input_size="original")
    assert ort_detector.backend.batched
    torch_detector = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], batch_size=4, input_size="original", backend="torch")
    # mixed sizes padded to one batch of 4, then one of 2 (padding changes border context, so the
    # reference is the torch backend on the same batches)
    for image, expected, actual in zip(images[:6], torch_detector.detect_batch(images[:6]), ort_detector.detect_batch(images[:6])):
        assert_same_detections(expected, actual, image.name)


def test_exported_file_loads_back_into_pytorch(exported_500m_kps, scrfd_onnx, images):
    original = create_model("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"])
    reloaded = create_model("scrfd_500m_kps", exported_500m_kps)
    for (name, a), b in zip(original.state_dict().items(), reloaded.state_dict().values()):
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(a, b), name
    detections = Detector("scrfd_500m_kps", exported_500m_kps).detect(images[0])
    assert len(detections) == 6


def test_mismatched_files_are_refused(exported_500m_kps, scrfd_onnx, images):
    with pytest.raises(WeightsError, match="does not fit model 'scrfd_2.5g_kps': it is a facescope export of 'scrfd_500m_kps'; it fits scrfd_500m_kps$"):
        Detector("scrfd_2.5g_kps", exported_500m_kps, backend="onnxruntime")
    with pytest.raises(WeightsError, match="does not fit model 'scrfd_500m': it is a facescope export of 'scrfd_500m_kps'"):
        Detector("scrfd_500m", exported_500m_kps, backend="onnxruntime")
    with pytest.raises(FacescopeError, match=r"fixed 640x640 input but this preset feeds 320x320; use --input-size 640 \(Python: input_size=640\)"):
        Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps_static640"], backend="onnxruntime", input_size=320)
