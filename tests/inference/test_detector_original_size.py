"""The Detector with "original" resizing and no padding (RetinaFace's official presets)."""

import numpy as np
import pytest
import torch

from facescope.inference.detector import Detector
from facescope.models import create_model


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (37, 53, 3), dtype=np.uint8), rng.integers(0, 255, (64, 41, 3), dtype=np.uint8)]


def test_differently_sized_images_in_one_batch_give_the_single_image_results():
    torch.manual_seed(0)
    detector = Detector(create_model("retinaface_mnet025"), preset="official")
    images = _images()
    batched = detector.detect_batch(images, color_order="bgr")
    for image, together in zip(images, batched):
        alone = detector.detect(image, color_order="bgr")
        assert len(alone) == len(together) > 0
        assert np.array_equal(alone.boxes, together.boxes) and np.array_equal(alone.scores, together.scores)


def test_official_preset_feeds_the_original_size_unpadded():
    detector = Detector(create_model("retinaface_mnet025"), preset="official")
    seen = []
    network = detector.backend.model  # the (optimised) network the backend runs
    network.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[2:])))
    detector.detect_batch(_images(), color_order="bgr")
    assert sorted(seen) == [(37, 53), (64, 41)]
    assert "score > 0.02" in detector.describe()


@pytest.mark.shared
def test_cli_official_preset_equals_the_oracle(shared_data, tmp_path):
    import json

    import cv2

    from oracles.pytorch_retinaface import PytorchRetinaFaceReference
    from facescope.cli import main

    weights = shared_data / "weights/retinaface/mobilenet0.25_Final.pth"
    image = shared_data / "images/crowd/t1.jpg"
    js = tmp_path / "faces.json"
    args = ["detect", str(image), "--model", "retinaface_mnet025", "--weights", str(weights), "--preset", "official"]
    assert main(args + ["--json", str(js), "--quiet"]) == 0
    faces = json.loads(js.read_text())["faces"]
    dets, _ = PytorchRetinaFaceReference("mobilenet0.25", weights, stable_ties=True).detect(cv2.imread(str(image)))
    assert len(faces) == len(dets) == 22
    assert np.abs(np.array([f["box"] for f in faces]) - dets[:, :4]).max() <= 0.006  # JSON rounds to 0.01
