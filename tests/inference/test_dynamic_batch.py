"""Dynamic batches: same-size network inputs run as one forward pass where the ONNX file has a
dynamic batch dimension, image by image where it is batch-1 (the official SCRFD files), with the
same detections as batch 1 either way; fp16 is refused where it cannot run."""

import numpy as np
import pytest

from facescope import Detector
from facescope.errors import FacescopeError
from facescope.export import export_onnx

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def dynamic_batch_onnx(scrfd_onnx, tmp_path_factory):
    """scrfd_500m_kps re-exported by facescope: dynamic batch, height and width."""
    path = tmp_path_factory.mktemp("export") / "scrfd_500m_kps_dynamic.onnx"
    export_onnx("scrfd_500m_kps", path, weights=scrfd_onnx["scrfd_500m_kps"])
    return path


def _forward_batch_sizes(detector: Detector) -> list[int]:
    """Record the batch dimension of every onnxruntime session run of ``detector``."""
    sizes: list[int] = []
    session_run = detector.backend.session.run

    def counting_run(names, feeds):
        sizes.append(int(next(iter(feeds.values())).shape[0]))
        return session_run(names, feeds)

    detector.backend.session.run = counting_run
    return sizes


def _assert_same(expected, actual):
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual):
        assert len(a) == len(b)
        if len(a):
            assert np.abs(a.boxes - b.boxes).max() <= 1e-3
            assert np.abs(a.scores - b.scores).max() <= 1e-5
            assert np.abs(a.landmarks - b.landmarks).max() <= 1e-3


def test_dynamic_file_runs_one_forward_per_batch_with_batch_1_results(dynamic_batch_onnx, wider_val_images):
    images = wider_val_images[:6]
    # a square letterbox gives every image one input size (the default long:640 keeps each photo's aspect)
    single = Detector("scrfd_500m_kps", dynamic_batch_onnx, batch_size=1, threads=1, input_size=640)
    batched = Detector("scrfd_500m_kps", dynamic_batch_onnx, batch_size=4, threads=1, input_size=640)
    assert batched.batches_natively
    sizes = _forward_batch_sizes(batched)
    _assert_same(single.detect_batch(images), batched.detect_batch(images))
    assert sizes == [4, 2]  # letterboxed to 640x640: one forward per batch
    assert sum(len(d) for d in single.detect_batch(images)) > 50


def test_official_batch_1_file_runs_image_by_image_with_the_same_results(scrfd_onnx, wider_val_images):
    images = wider_val_images[:3]
    single = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], batch_size=1, threads=1)
    batched = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], batch_size=3, threads=1)
    assert not batched.batches_natively  # input 1x3xHxW: the file cannot take a batch
    sizes = _forward_batch_sizes(batched)
    _assert_same(single.detect_batch(images), batched.detect_batch(images))
    assert sizes == [1, 1, 1]


def test_fp16_is_refused_on_cpu_before_any_weights_are_read(tmp_path):
    with pytest.raises(FacescopeError, match="fp16 needs a CUDA device"):
        Detector("scrfd_500m_kps", tmp_path / "missing.onnx", fp16=True)
