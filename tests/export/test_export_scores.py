"""The exported graph scores through the same function as the PyTorch model, including a declared logit scale."""

import numpy as np
import onnxruntime as ort
import torch

from facescope.export import export_onnx
from facescope.export.onnx import normalised_batch, synthetic_scene
from facescope.models import create_model


def test_a_declared_logit_scale_is_in_the_exported_scores(tmp_path):
    torch.manual_seed(0)
    model = create_model("scrfd_500m_kps")
    model.logit_scale = 3.0  # as a margin-trained head's entry declares (HeadLayout.logit_scale)
    export_onnx(model, tmp_path / "m.onnx", input_size=64)  # raises unless onnxruntime matches eager PyTorch
    batch = normalised_batch([synthetic_scene(64, 64)], model)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (exported,) = session.run(["score_8"], {session.get_inputs()[0].name: batch.numpy()})
    with torch.no_grad():
        logits = model(batch).cls_logits[0]
    np.testing.assert_allclose(exported[..., 0], torch.sigmoid(3.0 * logits[..., 0]).numpy(), atol=1e-5)
    assert np.abs(exported[..., 0] - torch.sigmoid(logits[..., 0]).numpy()).max() > 1e-3  # the scale really matters
