"""The user-facing face detector: image(s) in, :class:`~facescope.structures.Detections` out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facescope.allocator import tune_cpu_allocator
from facescope.errors import FacescopeError, WeightsError, suggest
from facescope.inference.backends import Backend, make_backend
from facescope.inference.image_io import ColorOrder, ImageLike, to_bgr
from facescope.inference.preprocess import ResizedImage, resize_image, to_original, to_tensor
from facescope.inference.validate import validate_detector_options
from facescope.models.base import DenseFaceDetector
from facescope.models.registry import create_model, get_model_entry, resolve_weights
from facescope.models.spec import InferencePreset
from facescope.structures import Detections

InputSize = int | tuple[int, int] | Literal["original"] | None


class Detector:
    """Detect faces with any registered model.

    Args:
        model: a registry name (see ``facescope models``) or a built model.
        weights: a weights file (``.onnx`` or PyTorch), a release tag, or None for the model's
            default pretrained release (downloaded and hash-checked on first use).
        preset: named inference recipe of the model family (``"default"``, ``"official"``,
            ``"widerface"``, ...).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        threads: CPU threads for inference: ``torch.set_num_threads`` for the torch backend, the
            onnxruntime session's intra-op threads for the onnxruntime backend (which sets PyTorch,
            left with decoding and NMS only, to one thread). PyTorch's thread count is process-wide.
        score_thresh: override the preset's score threshold.
        nms_thresh: override the preset's NMS IoU threshold.
        input_size: override the preset's input size: an int (square letterbox), ``(width, height)``
            or ``"original"`` (the image's own size, padded to a multiple of 32).
        backend: ``"torch"`` or ``"onnxruntime"`` (needs an ``.onnx`` weights file).
        batch_size: images per forward pass in :meth:`detect_batch`.

    Example:
        >>> detector = Detector("scrfd_2.5g_kps", weights="scrfd_2.5g_kps.onnx")
        >>> faces = detector.detect("group.jpg")
        >>> faces.boxes.shape, faces.landmarks.shape
        (torch.Size([6, 4]), torch.Size([6, 5, 2]))
    """

    def __init__(
        self,
        model: str | DenseFaceDetector = "scrfd_2.5g_kps",
        weights: str | Path | None = None,
        *,
        preset: str = "default",
        device: str | torch.device = "cpu",
        threads: int | None = None,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        input_size: InputSize = None,
        backend: Literal["torch", "onnxruntime"] = "torch",
        batch_size: int = 8,
        progress: bool = True,
    ) -> None:
        validate_detector_options(model=model, score_thresh=score_thresh, nms_thresh=nms_thresh, input_size=input_size, batch_size=batch_size, threads=threads, device=device, backend=backend)  # noqa: E501
        if backend == "onnxruntime":
            # decoding and NMS are all the PyTorch work left; a second thread pool spinning next to
            # onnxruntime's costs more than it saves (SCRFD-500M-kps, VGA, 2 threads: 20 -> 15 ms)
            torch.set_num_threads(1)
        elif threads is not None:
            torch.set_num_threads(int(threads))
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.device = torch.device(device)
        if self.device.type == "cpu":
            tune_cpu_allocator()  # reuse freed buffers across frames (see facescope.allocator)
        weights_path = _weights_path(model, weights, progress)
        self.model = _build(model, weights_path, self.device, backend)
        self.preset_name = preset
        self.preset = _preset(self.model, preset).with_overrides(score_thresh, nms_thresh, input_size)
        arch = model if isinstance(model, str) else None
        self.backend: Backend = make_backend(backend, self.model, weights_path, self.device, threads, arch)
        self.batch_size = max(int(batch_size), 1)

    def detect(self, image: ImageLike, *, color_order: ColorOrder | None = None) -> Detections:
        """Detect faces in one image (a path, a numpy array with ``color_order``, or a PIL image)."""
        return self.detect_batch([image], color_order=color_order)[0]

    __call__ = detect

    def detect_batch(self, images: Sequence[ImageLike], *, color_order: ColorOrder | None = None) -> list[Detections]:
        """Detect faces in several images, ``batch_size`` at a time; one result per image."""
        results: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [to_bgr(image, color_order) for image in images[start : start + self.batch_size]]
            results.extend(self._detect_bgr(chunk))
        return results

    def stream(self, images: Iterable[ImageLike], *, color_order: ColorOrder | None = None) -> Iterator[Detections]:
        """Lazily detect faces in an iterable of images, one at a time (constant memory)."""
        for image in images:
            yield self.detect(image, color_order=color_order)

    def _detect_bgr(self, images: list[np.ndarray]) -> list[Detections]:
        """Images whose network inputs differ in size (``"original"`` resizing) run as separate
        batches, so no image is padded beyond its own input size and results do not depend on
        what else is in the batch."""
        resized = [resize_image(image, self.preset.resize, self.model.input_spec) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(resized):
            groups.setdefault(item.input_hw, []).append(i)
        results: list[Detections | None] = [None] * len(images)
        for members in groups.values():
            group = [resized[i] for i in members]
            batch = to_tensor(group, self.model.input_spec, self.preset.resize.pad_value)
            input_hw = (int(batch.shape[2]), int(batch.shape[3]))
            detections = self.model.decode(self.backend(batch), input_hw, self.preset.postprocess)
            for i, dets, item in zip(members, detections, group):
                results[i] = to_original(dets.to("cpu"), item)
        return [r for r in results if r is not None]

    def describe(self) -> str:
        """One line naming the model, backend and settings."""
        post, resize = self.preset.postprocess, self.preset.resize
        size = "original size" if resize.mode == "original" else f"letterbox {resize.size[0]}x{resize.size[1]}"
        return (
            f"{self.model_name} [{self.backend.name}] preset '{self.preset_name}': {size}, "
            f"score {'>' if post.strict_score else '>='} {post.score_thresh}, NMS {post.nms_thresh}"
        )


def _weights_path(model: str | DenseFaceDetector, weights: str | Path | None, progress: bool) -> Path | None:
    """The local weights file: the given path, a release tag, or the default release."""
    if isinstance(model, DenseFaceDetector):
        if weights is not None:
            raise FacescopeError("pass weights either inside the model or as weights=, not both")
        return None
    entry = get_model_entry(model)
    if weights is None:
        if not entry.weights:
            raise WeightsError(f"model '{model}' has no pretrained weights; pass weights=PATH (or --weights PATH)")
        weights = "pretrained"
    return resolve_weights(entry, weights, progress)


def _build(
    model: str | DenseFaceDetector, weights: Path | None, device: torch.device, backend: str
) -> DenseFaceDetector:
    if isinstance(model, DenseFaceDetector):
        return model.to(device).eval()
    if backend == "onnxruntime":
        return create_model(model, device=device)  # architecture only: input spec, priors, coder
    return create_model(model, weights, device=device)


def _preset(model: DenseFaceDetector, name: str) -> InferencePreset:
    if name not in model.presets:
        raise FacescopeError(f"unknown preset '{name}'{suggest(name, model.presets)}; {model.family} has {sorted(model.presets)}")
    return model.presets[name]


def preprocess_batch(
    images: list[np.ndarray], preset: InferencePreset, model: DenseFaceDetector
) -> tuple[torch.Tensor, list[ResizedImage]]:
    """BGR images -> (normalised batch, resize records), as :class:`Detector` does."""
    resized = [resize_image(image, preset.resize, model.input_spec) for image in images]
    return to_tensor(resized, model.input_spec, preset.resize.pad_value), resized
