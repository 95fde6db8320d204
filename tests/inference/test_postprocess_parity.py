"""One post-processing algorithm, two array back-ends: numpy (onnxruntime path) and torch give the
same faces in the same order on the 38 WIDER FACE val images, with the official weights."""

import numpy as np
import pytest
import torch

from facescope.inference.backends import OnnxRuntimeBackend, TorchBackend
from facescope.inference.image_io import read_image
from facescope.inference.postprocess import Predictions, postprocess
from facescope.inference.preprocess import resize_image, to_blob
from facescope.models import create_model, get_model_entry

pytestmark = pytest.mark.shared

# The default suite checks the first images; `pytest -m slow` checks all 38 (a few minutes on 2 cores).
SUBSETS = [pytest.param(4, id="4-images"), pytest.param(38, id="all-38", marks=pytest.mark.slow)]


def _predictions(backend, entry, preset, image_path):
    resized = resize_image(read_image(image_path), preset.resize, entry.input_spec)  # as the Detector does
    batch = to_blob([resized], entry.input_spec, preset.resize.pad_value)
    return backend(batch), (batch.shape[2], batch.shape[3])


def _assert_same(entry, preset, predictions_np, predictions_torch, input_hw):
    generator, coder = entry.head.anchor_generator(), entry.head.coder
    counts = []
    for settings in (preset.postprocess, entry.presets["default"].postprocess):
        (ours_np,) = postprocess(predictions_np, input_hw, generator, coder, settings)
        (ours_torch,) = postprocess(predictions_torch, input_hw, generator, coder, settings)
        assert len(ours_np) == len(ours_torch)
        assert np.array_equal(ours_np.scores, ours_torch.scores)  # same faces in the same order
        if len(ours_np):
            assert np.abs(ours_np.boxes - ours_torch.boxes).max() <= 1e-3
            assert np.abs(ours_np.landmarks - ours_torch.landmarks).max() <= 1e-3
        counts.append(len(ours_np))
    return counts[0]  # faces under the protocol preset (low score threshold)


@pytest.mark.parametrize("count", SUBSETS)
@pytest.mark.parametrize("name", ["scrfd_500m_kps", "scrfd_2.5g_kps"])
def test_numpy_equals_torch_postprocessing_scrfd_onnx(name, count, scrfd_onnx, wider_val_images):
    entry = get_model_entry(name)
    preset = entry.presets["widerface"]  # score 0.02: thousands of candidates per image
    backend = OnnxRuntimeBackend(scrfd_onnx[name], entry)
    faces = 0
    for path in wider_val_images[:count]:
        numpy_preds, input_hw = _predictions(backend, entry, preset, path)
        torch_preds = Predictions(*(torch.from_numpy(a) for a in (numpy_preds.scores, numpy_preds.box_regs, numpy_preds.landmark_regs)))
        faces += _assert_same(entry, preset, numpy_preds, torch_preds, input_hw)
    assert len(wider_val_images) == 38 and faces > 10 * count


@pytest.mark.parametrize("count", SUBSETS)
def test_numpy_equals_torch_postprocessing_retinaface_mnet025(count, retinaface_mnet_weights, wider_val_images):
    entry = get_model_entry("retinaface_mnet025")
    preset = entry.presets["official"].with_overrides(input_size=640)  # smaller inputs keep the test fast
    backend = TorchBackend(create_model("retinaface_mnet025", retinaface_mnet_weights), torch.device("cpu"))
    faces = 0
    for path in wider_val_images[:count]:
        torch_preds, input_hw = _predictions(backend, entry, preset, path)
        numpy_preds = Predictions(torch_preds.scores.numpy(), torch_preds.box_regs.numpy(), torch_preds.landmark_regs.numpy())
        faces += _assert_same(entry, preset, numpy_preds, torch_preds, input_hw)
    assert faces > 10 * count
