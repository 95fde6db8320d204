"""Inference backends: run a normalised batch through a network, return activated predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from facescope.errors import FacescopeError, WeightsError
from facescope.models.base import DenseFaceDetector, DensePredictions


class Backend(Protocol):
    name: str

    def __call__(self, batch: torch.Tensor) -> DensePredictions:
        """``Tensor[B, 3, H, W]`` normalised input -> activated predictions (levels concatenated)."""
        ...


class TorchBackend:
    """Eager PyTorch."""

    name = "torch"

    def __init__(self, model: DenseFaceDetector, device: torch.device) -> None:
        self.model = model
        self.device = device

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> DensePredictions:
        return self.model.activate(self.model(batch.to(self.device)))


class OnnxRuntimeBackend:
    """onnxruntime on an ONNX file with per-level ``score_*``, ``bbox_*`` [, ``kps_*``] outputs.

    Accepts facescope exports (batched, named outputs) and the official SCRFD files (numbered
    outputs in the same order, with or without a batch dimension; unbatched files run one image
    at a time). Scores in the file are probabilities.
    """

    name = "onnxruntime"

    def __init__(self, path: Path, model: DenseFaceDetector, device: torch.device, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise WeightsError(f"onnxruntime cannot load {path}: {exc}")
        self.input_name = self.session.get_inputs()[0].name
        self.num_levels = len(model.anchor_generator.strides)
        self.with_landmarks = model.has_landmarks
        self._check_outputs(path)

    def _check_outputs(self, path: Path) -> None:
        expected = self.num_levels * (3 if self.with_landmarks else 2)
        outputs = self.session.get_outputs()
        if len(outputs) != expected:
            raise WeightsError(f"{path} has {len(outputs)} outputs; this architecture needs {expected}")
        self.batched = len(outputs[0].shape) == 3

    def __call__(self, batch: torch.Tensor) -> DensePredictions:
        array = batch.cpu().numpy()
        if self.batched:
            return self._predictions(self.session.run(None, {self.input_name: array}))
        per_image = [self._predictions(self.session.run(None, {self.input_name: array[i : i + 1]})) for i in range(len(array))]
        return _stack(per_image)

    def _predictions(self, outputs: list[np.ndarray]) -> DensePredictions:
        tensors = [torch.from_numpy(o if o.ndim == 3 else o[None]) for o in outputs]
        n = self.num_levels
        scores = [t[..., 0] for t in tensors[:n]]
        landmarks = tensors[2 * n : 3 * n] if self.with_landmarks else None
        return DensePredictions.from_levels(scores, tensors[n : 2 * n], landmarks)


def _stack(items: list[DensePredictions]) -> DensePredictions:
    landmarks = torch.cat([p.landmark_regs for p in items]) if items[0].landmark_regs is not None else None
    return DensePredictions(torch.cat([p.scores for p in items]), torch.cat([p.box_regs for p in items]), landmarks)


def make_backend(
    kind: str, model: DenseFaceDetector, weights: Path | None, device: torch.device, threads: int | None
) -> Backend:
    """Build the named backend."""
    if kind == "torch":
        return TorchBackend(model, device)
    if kind == "onnxruntime":
        if weights is None or weights.suffix.lower() != ".onnx":
            raise FacescopeError("backend='onnxruntime' needs an .onnx weights file (export one with `facescope export`)")
        return OnnxRuntimeBackend(weights, model, device, threads)
    raise FacescopeError(f"unknown backend '{kind}'; use 'torch' or 'onnxruntime'")
