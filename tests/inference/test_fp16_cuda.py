"""fp16 inference on a CUDA device (``pytest -m cuda``): the same faces as float32 on the same device."""

import numpy as np
import pytest
import torch

from facescope import Detector
from facescope.errors import FacescopeError

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.shared,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run benchmarks/gpu_check.sh there)"),
]


def test_fp16_equals_fp32_on_cuda(scrfd_onnx, wider_val_images):
    weights = scrfd_onnx["scrfd_2.5g_kps"]
    fp32 = Detector("scrfd_2.5g_kps", weights, backend="torch", device="cuda", batch_size=8)
    fp16 = Detector("scrfd_2.5g_kps", weights, backend="torch", device="cuda", batch_size=8, fp16=True)
    assert next(fp16.backend.model.parameters()).dtype == torch.float16
    total, matched = 0, 0
    for a, b in zip(fp32.detect_batch(wider_val_images[:8]), fp16.detect_batch(wider_val_images[:8])):
        total += len(a)
        for box, score in zip(a.boxes, a.scores):
            if score < 0.55:  # faces near the 0.5 threshold may flip with half-precision rounding
                continue
            gaps = np.abs(b.boxes - box).max(axis=1) if len(b) else np.array([np.inf])
            matched += int(gaps.min() <= 2.0)
            assert gaps.min() <= 2.0
    assert total > 50 and matched > 0


def test_fp16_is_refused_on_the_onnxruntime_backend(scrfd_onnx):
    with pytest.raises(FacescopeError, match="fp16 runs on the torch backend"):
        Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], device="cuda", fp16=True)
