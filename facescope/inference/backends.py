"""Inference backends: run a normalised batch through a network, return activated predictions."""

from __future__ import annotations

import json
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
    """Eager PyTorch on an inference-optimised copy of the model (BatchNorm folded into the convs,
    channels-last layout; see :mod:`facescope.inference.optimize`). The caller's model is untouched.
    ``optimize=False`` runs the model as it is."""

    name = "torch"

    def __init__(self, model: DenseFaceDetector, device: torch.device, optimize: bool = True) -> None:
        from facescope.inference.optimize import optimize_for_inference

        self.device = device
        channels_last = device.type == "cpu"
        self.model = optimize_for_inference(model, channels_last) if optimize else model.eval()
        self.channels_last = optimize and channels_last and self.model is not model

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> DensePredictions:
        batch = batch.to(self.device)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self.model.activate(self.model(batch))


class OnnxRuntimeBackend:
    """onnxruntime on an ONNX file with per-level ``score_*``, ``bbox_*`` [, ``kps_*``] outputs.

    Accepts facescope exports (batched, named outputs, see :mod:`facescope.export.onnx`) and the
    official SCRFD files: numbered outputs in the same order, with or without a batch dimension,
    dynamic or fixed input size. Files whose input batch is fixed (or whose outputs have no batch
    dimension) run one image at a time. Scores in the file are probabilities. A facescope export
    whose metadata names another architecture, strides or landmark setting is refused.
    """

    name = "onnxruntime"

    def __init__(
        self, path: Path, model: DenseFaceDetector, device: torch.device, threads: int | None, arch: str | None = None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # errors only: official files annotate 640x640 output shapes and warn at any other size
        options.log_severity_level = 3
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
        self.path = path
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        # fixed (int) dims of the input; None where dynamic
        self.fixed_input = [d if isinstance(d, int) and d > 0 else None for d in graph_input.shape]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.num_levels = len(model.anchor_generator.strides)
        self.with_landmarks = model.has_landmarks
        self._check_outputs(path)
        _check_export_metadata(path, self.session.get_modelmeta().custom_metadata_map, model, arch)

    def _check_outputs(self, path: Path) -> None:
        expected = self.num_levels * (3 if self.with_landmarks else 2)
        outputs = self.session.get_outputs()
        if len(outputs) != expected:
            raise WeightsError(f"{path} has {len(outputs)} outputs; this architecture needs {expected}")
        self.batched = len(outputs[0].shape) == 3 and self.fixed_input[0] is None

    def __call__(self, batch: torch.Tensor) -> DensePredictions:
        array = batch.cpu().numpy()
        self._check_input_size(array.shape)
        if self.batched:
            return self._predictions(self.session.run(self.output_names, {self.input_name: array}))
        per_image = [
            self._predictions(self.session.run(self.output_names, {self.input_name: array[i : i + 1]}))
            for i in range(len(array))
        ]
        return _stack(per_image)

    def _check_input_size(self, shape: tuple[int, ...]) -> None:
        fixed_h, fixed_w = self.fixed_input[2:4] if len(self.fixed_input) == 4 else (None, None)
        if (fixed_h is not None and fixed_h != shape[2]) or (fixed_w is not None and fixed_w != shape[3]):
            raise FacescopeError(
                f"{self.path.name} has a fixed {fixed_w}x{fixed_h} input but this preset feeds {shape[3]}x{shape[2]}; "
                f"use input_size={fixed_w if fixed_w == fixed_h else (fixed_w, fixed_h)} or a file with dynamic axes"
            )

    def _predictions(self, outputs: list[np.ndarray]) -> DensePredictions:
        # unbatched official files: (N_l, C) -> (1, N_l, C)
        tensors = [torch.from_numpy(o if o.ndim == 3 else o[None]) for o in outputs]
        n = self.num_levels
        scores = [t[..., 0] for t in tensors[:n]]
        landmarks = tensors[2 * n : 3 * n] if self.with_landmarks else None
        return DensePredictions.from_levels(scores, tensors[n : 2 * n], landmarks)


def _check_export_metadata(path: Path, metadata: dict[str, str], model: DenseFaceDetector, arch: str | None) -> None:
    """Refuse a facescope export (``facescope_*`` metadata) made for another architecture."""
    if "facescope_model" not in metadata:
        return  # not a facescope export (e.g. an official file): the output count was checked
    problems = []
    if arch is not None and metadata["facescope_model"] != arch:
        problems.append(f"it was exported from '{metadata['facescope_model']}', not '{arch}'")
    expected = {
        "facescope_strides": list(model.anchor_generator.strides),
        "facescope_anchors_per_level": list(model.anchor_generator.num_anchors_per_level),
        "facescope_has_landmarks": bool(model.has_landmarks),
    }
    for key, value in expected.items():
        if key in metadata and json.loads(metadata[key]) != value:
            problems.append(f"{key.removeprefix('facescope_')} {metadata[key]} != {json.dumps(value)}")
    if problems:
        raise WeightsError(f"{path} does not fit this architecture: " + "; ".join(problems))


def _stack(items: list[DensePredictions]) -> DensePredictions:
    landmarks = torch.cat([p.landmark_regs for p in items]) if items[0].landmark_regs is not None else None
    return DensePredictions(torch.cat([p.scores for p in items]), torch.cat([p.box_regs for p in items]), landmarks)


def make_backend(
    kind: str,
    model: DenseFaceDetector,
    weights: Path | None,
    device: torch.device,
    threads: int | None,
    arch: str | None = None,
) -> Backend:
    """Build the named backend (``arch``: registry name, checked against an export's metadata)."""
    if kind == "torch":
        return TorchBackend(model, device)
    if kind == "onnxruntime":
        if weights is None or weights.suffix.lower() != ".onnx":
            raise FacescopeError("backend='onnxruntime' needs an .onnx weights file (export one with `facescope export`)")
        return OnnxRuntimeBackend(weights, model, device, threads, arch)
    raise FacescopeError(f"unknown backend '{kind}'; use 'torch' or 'onnxruntime'")
