"""Official SCRFD ONNX -> PyTorch: raw head outputs match onnxruntime to 1e-4 on real images."""

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from facescope.errors import WeightsError
from facescope.models import create_model

pytestmark = pytest.mark.shared

ARCH = {"scrfd_500m_kps": "scrfd_500m_kps", "scrfd_2.5g_kps": "scrfd_2.5g_kps", "scrfd_500m_kps_static640": "scrfd_500m_kps"}


def _blob(path) -> np.ndarray:
    image = cv2.resize(cv2.imread(str(path)), (640, 640))
    return cv2.dnn.blobFromImage(image, 1 / 128, (640, 640), (127.5, 127.5, 127.5), swapRB=True)


def _torch_outputs(model, blob: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(blob))
    levels = [torch.sigmoid(t) for t in out.cls_logits] + out.box_regs + out.landmark_regs
    return [t[0].numpy() for t in levels]


@pytest.mark.parametrize("key", sorted(ARCH))
def test_raw_outputs_match_onnxruntime(key, scrfd_onnx, wider_val_images, shared_data):
    model = create_model(ARCH[key], weights=scrfd_onnx[key])
    session = ort.InferenceSession(str(scrfd_onnx[key]), providers=["CPUExecutionProvider"])
    images = [shared_data / "images/crowd/t1.jpg"] + wider_val_images
    assert len(images) == 39
    worst = 0.0
    for path in images:
        blob = _blob(path)
        reference = session.run(None, {session.get_inputs()[0].name: blob})
        ours = _torch_outputs(model, blob)
        worst = max(worst, max(float(np.abs(r.reshape(o.shape) - o).max()) for r, o in zip(reference, ours)))
    assert worst <= 1e-4


def test_onnx_for_another_architecture_is_refused(scrfd_onnx):
    with pytest.raises(WeightsError, match="do not fit architecture 'scrfd_10g_kps'"):
        create_model("scrfd_10g_kps", weights=scrfd_onnx["scrfd_2.5g_kps"])


def test_imported_weights_survive_a_pytorch_round_trip(scrfd_onnx, tmp_path):
    model = create_model("scrfd_2.5g_kps", weights=scrfd_onnx["scrfd_2.5g_kps"])
    path = tmp_path / "scrfd_2.5g_kps.pth"
    torch.save(model.state_dict(), path)
    again = create_model("scrfd_2.5g_kps", weights=path)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x).box_regs[0], again(x).box_regs[0])
