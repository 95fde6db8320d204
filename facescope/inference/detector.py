"""The user-facing face detector: image(s) in, :class:`~facescope.structures.Detections` out.

With ONNX weights (the default backend picks onnxruntime for them) the whole path - reading,
resizing, normalising (OpenCV), the onnxruntime session, decoding and NMS (numpy) - imports no
torch. PyTorch weights run on the torch backend, which needs the ``torch`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facescope.errors import FacescopeError, WeightsError
from facescope.inference.image_io import ColorOrder, ImageLike, to_bgr
from facescope.inference.postprocess import candidates, passes_score, postprocess
from facescope.inference.preprocess import InputBuffers, ResizedImage, resize_image, to_blob, to_original
from facescope.inference.tta import DEFAULT_MAX_PASS_PIXELS, PassPlan, TTASpec, plan_passes, resolve_tta, run_tta
from facescope.inference.validate import validate_detector_options
from facescope.models.registry import ModelEntry, family_presets, get_model_entry, release_format, resolve_weights
from facescope.models.spec import InferencePreset, InputSpec
from facescope.structures import Detections, to_numpy

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector

InputSize = int | tuple[int, int] | Literal["original"] | None
BackendName = Literal["auto", "torch", "onnxruntime"]
TORCH_EXTRA_HINT = 'pip install "facescope[torch]"'
TTA_PROGRESS_MIN_PASSES = 4  # a per-image progress bar is shown from this many passes on (with tta_progress)
LOGGER = logging.getLogger("facescope.tta")


class Detector:
    """Detect faces with any registered model.

    Args:
        model: a registry name (see ``facescope models``) or a built PyTorch model.
        weights: a weights file (``.onnx`` or PyTorch), a release tag, or None for the model's
            default pretrained release (downloaded and hash-checked on first use).
        preset: named inference recipe of the model (``"default"``, ``"official"``,
            ``"widerface"``, ...); ``"default"`` suits photos, evaluation uses the weights'
            protocol preset.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        threads: CPU threads: the onnxruntime session's intra-op threads, or for the torch backend
            ``torch.set_num_threads`` (process-wide: it changes every PyTorch computation).
        score_thresh: override the preset's score threshold.
        nms_thresh: override the preset's NMS IoU threshold.
        input_size: override the preset's input size: an int (square letterbox), ``(width, height)``,
            ``"original"`` (the image's own size, padded to the model's size divisor) or ``"long:N"``
            (the longer side scaled to ``N``, aspect kept, padded only to the size divisor; for files
            with dynamic input sizes).
        backend: ``"auto"`` (onnxruntime for ``.onnx`` weights and ONNX releases, torch otherwise),
            ``"torch"`` or ``"onnxruntime"``.
        batch_size: images per forward pass in :meth:`detect_batch`.
        progress: progress bar when downloading weights.
        tune_process: also apply process-wide CPU tuning (glibc malloc settings of
            :mod:`facescope.allocator`); off by default so that a library call changes no global
            state. The ``facescope`` CLI turns it on.
        tta: test-time augmentation: a protocol name (``"flip"``, ``"multiscale"``, ``"retinaface"``,
            ``"shf"``, ``"dsfd"``, ``"s3fd"``, ``"pyramidbox"``; see
            :data:`facescope.inference.tta.TTA_PROTOCOLS`), a :class:`~facescope.inference.tta.TTASpec`,
            ``"none"`` (single pass even when the preset names a protocol), or None for the preset's
            own (``preset.tta``: the DSFD and SHF papers' pyramids in those families' ``widerface`` presets, a
            single pass in SCRFD's and RetinaFace's). Every pass runs at its own size (the
            preset's resize is replaced by the protocol's scales, relative to the scale the preset
            would apply), its candidates (the preset's score threshold, or the protocol's per-pass
            one) are mapped back to the image and merged once by the protocol's NMS or box voting;
            the result keeps the preset's score threshold and ``max_detections``. Passes of one size
            (a scale and its mirror) run as one batch.
        max_pass_pixels: per-pass pixel budget of TTA; larger passes are scaled down to it and a
            note is logged once (``facescope.tta`` logger; also in :attr:`last_tta_notes`).
        tta_progress: show a progress bar over the passes of an image with many (>= 4) passes.

    Attributes:
        model_name: the registered architecture that runs (or the class name of a given model).
        backend: the backend object (``backend.name`` is ``"torch"`` or ``"onnxruntime"``).
        model: the PyTorch model on the torch backend, None on onnxruntime.

    Example:
        >>> detector = Detector("scrfd_2.5g_kps", weights="scrfd_2.5g_kps.onnx")   # onnxruntime, no torch
        >>> faces = detector.detect("group.jpg")
        >>> faces.boxes.shape, faces.landmarks.shape                                # numpy float32
        ((6, 4), (6, 5, 2))
    """

    def __init__(
        self,
        model: str | DenseFaceDetector = "scrfd_2.5g_kps",
        weights: str | Path | None = None,
        *,
        preset: str = "default",
        device: str = "cpu",
        threads: int | None = None,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        input_size: InputSize = None,
        backend: BackendName = "auto",
        batch_size: int = 8,
        progress: bool = True,
        tune_process: bool = False,
        tta: str | TTASpec | None = None,
        max_pass_pixels: int = DEFAULT_MAX_PASS_PIXELS,
        tta_progress: bool = False,
    ) -> None:
        requested_tta = resolve_tta(tta)  # an unknown protocol name fails here, before any weights are read
        if max_pass_pixels < 1:
            raise FacescopeError(f"max_pass_pixels must be >= 1, got {max_pass_pixels}")
        if backend not in ("auto", "torch", "onnxruntime"):
            raise FacescopeError(f"unknown backend '{backend}'; use 'auto', 'torch' or 'onnxruntime'")
        # every option is checked before any weights are read or a session is built
        validate_detector_options(
            model=model, score_thresh=score_thresh, nms_thresh=nms_thresh, input_size=input_size,
            batch_size=batch_size, threads=threads, device=device, backend=None if backend == "auto" else backend,
        )  # fmt: skip
        self.entry: ModelEntry | None = get_model_entry(model) if isinstance(model, str) else None
        self.device = str(device)
        self.weights_path = _weights_path(model, self.entry, weights, progress)
        kind = _choose_backend(backend, model, self.entry, weights, self.weights_path)
        if tune_process and self.device == "cpu":
            from facescope.allocator import tune_cpu_allocator

            tune_cpu_allocator()  # reuse freed buffers across frames (see facescope.allocator)
        self.model: DenseFaceDetector | None = None
        if kind == "onnxruntime":
            assert self.entry is not None and self.weights_path is not None
            from facescope.inference.backends import OnnxRuntimeBackend

            self.backend: Any = OnnxRuntimeBackend(self.weights_path, self.entry, self.device, threads)
            self.model_name = self.entry.name
            self.input_spec: InputSpec = self.entry.input_spec
            self.anchor_generator = self.entry.head.anchor_generator()
            self.coder = self.entry.head.coder
            self.has_landmarks = self.entry.head.has_landmarks
            presets = self.entry.presets
        else:
            self.model, self.backend = _torch_backend(model, self.weights_path, self.device, threads)
            self.model_name = model if isinstance(model, str) else getattr(self.model, "registry_name", type(model).__name__)
            self.input_spec = self.model.input_spec
            self.anchor_generator = self.model.anchor_generator
            self.coder = self.model.coder
            self.has_landmarks = bool(self.model.has_landmarks)
            presets = self.entry.presets if self.entry is not None else _object_presets(self.model)
        self.preset_name = preset
        chosen = _preset(presets, preset, self.model_name).with_overrides(score_thresh, nms_thresh, input_size)
        self.tta: TTASpec | None = requested_tta if tta is not None else resolve_tta(chosen.tta)
        self.preset = _fit_fixed_input(replace(chosen, tta=self.tta), self.backend, explicit=input_size is not None)
        self.input_buffers = InputBuffers(self.input_spec, self.preset.resize.pad_value)  # one image per forward: no copies
        mismatch = getattr(self.backend, "calibration_mismatch", lambda size: None)(self.preset.resize.size_text())
        if mismatch:
            logging.getLogger("facescope").warning("%s", mismatch)
        self.batch_size = max(int(batch_size), 1)
        self.max_pass_pixels = int(max_pass_pixels)
        self.tta_progress = bool(tta_progress)
        self.last_tta_notes: tuple[str, ...] = ()
        self._shown_notes: set[str] = set()
        if self.tta is not None and getattr(self.backend, "fixed_input", None) is not None:
            # a fixed-size file: plan an image of the letterbox canvas now, so a protocol whose passes
            # cannot fit is refused before any image is read (every image is checked again when it runs)
            width, height = self.preset.resize.size
            self.plan_tta((height, width))

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
        if self.tta is not None:
            return [self._detect_tta(image) for image in images]
        return self._detect_single_pass(images)

    def _detect_single_pass(self, images: list[np.ndarray]) -> list[Detections]:
        """Images whose network inputs differ in size (``"original"`` resizing) run as separate
        batches, so no image is padded beyond its own input size and results do not depend on
        what else is in the batch."""
        resized = [resize_image(image, self.preset.resize, self.input_spec) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, item in enumerate(resized):
            groups.setdefault(item.input_hw, []).append(i)
        results: list[Detections | None] = [None] * len(images)
        for members in groups.values():
            group = [resized[i] for i in members]
            batch = self.input_buffers(group[0]) if len(group) == 1 else to_blob(group, self.input_spec, self.preset.resize.pad_value)
            input_hw = (int(batch.shape[2]), int(batch.shape[3]))
            predictions = self.backend(batch)
            detections = postprocess(predictions, input_hw, self.anchor_generator, self.coder, self.preset.postprocess)
            for i, dets, item in zip(members, detections, group):
                results[i] = to_original(dets, item)
        return [r for r in results if r is not None]

    # ---------------------------------------------------------------- test-time augmentation

    def detector_scale(self, image_hw: tuple[int, int]) -> float:
        """The original-to-input factor of the preset's single pass for an ``image_hw`` image
        (1 for ``"original"`` resizing): the base of the protocols' relative scales."""
        resize = self.preset.resize
        height, width = image_hw
        if resize.mode == "long":
            return resize.size[0] / max(height, width)
        if resize.mode != "letterbox":
            return 1.0
        return min(resize.size[0] / width, resize.size[1] / height)

    def plan_tta(self, image_hw: tuple[int, int]) -> list[PassPlan]:
        """The passes the detector's protocol runs on an ``image_hw`` image (checked against a
        fixed-size ONNX input), without running them."""
        if self.tta is None:
            raise FacescopeError("this detector runs a single pass (tta=None)")
        plans = plan_passes(self.tta, image_hw, detector_scale=self.detector_scale(image_hw), max_pixels=self.max_pass_pixels)
        for plan in plans:
            self._pass_input_hw(plan.target_hw, plan)
        return plans

    def _pass_input_hw(self, pass_hw: tuple[int, int], plan: PassPlan | None = None) -> tuple[int, int]:
        """Network input of a pass image: its size padded (bottom/right) to the size divisor, or
        the file's fixed size when the pass fits inside it (a letterbox with the offset at 0, 0)."""
        divisor = max(self.input_spec.size_divisor, 1)
        input_hw = (-(-pass_hw[0] // divisor) * divisor, -(-pass_hw[1] // divisor) * divisor)
        fixed = getattr(self.backend, "fixed_input", None)
        fixed_h, fixed_w = fixed[2:4] if fixed is not None and len(fixed) == 4 else (None, None)
        if fixed_h is None and fixed_w is None:
            return input_hw
        if (fixed_h is not None and pass_hw[0] > fixed_h) or (fixed_w is not None and pass_hw[1] > fixed_w):
            what = f"pass '{plan.label}' x{plan.scale:.3g}" if plan is not None else "a pass"
            raise FacescopeError(
                f"{self.backend.path.name} has a fixed {fixed_w}x{fixed_h} input but TTA protocol '{self.tta.name}' "
                f"needs {pass_hw[1]}x{pass_hw[0]} for {what}; use an ONNX file with dynamic axes "
                "(`facescope export`), another protocol or a smaller input size"
            )
        return (fixed_h or input_hw[0], fixed_w or input_hw[1])

    def _run_passes(self, pass_images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Same-size pass images -> per image the candidates (score threshold, pre-NMS top-k,
        decode; no NMS) in that pass image's pixels, as numpy arrays. One forward for all."""
        assert self.tta is not None
        pass_hw = (int(pass_images[0].shape[0]), int(pass_images[0].shape[1]))
        input_hw = self._pass_input_hw(pass_hw)
        items = [ResizedImage(image, input_hw, (1.0, 1.0), pass_hw) for image in pass_images]
        predictions = self.backend(to_blob(items, self.input_spec, self.preset.resize.pad_value))
        priors = self.anchor_generator.priors_like(input_hw, predictions.box_regs)
        settings = self.preset.postprocess
        if self.tta.pass_score_threshold is not None:
            settings = replace(settings, score_thresh=self.tta.pass_score_threshold, strict_score=False)
        if self.tta.pass_top_k is not None:  # the protocol's per-pass cap replaces the preset's (e.g. SHF's 10,000)
            settings = replace(settings, pre_nms_top_k=self.tta.pass_top_k)
        results = []
        for b in range(len(pass_images)):
            landmark_regs = predictions.landmark_regs[b] if predictions.landmark_regs is not None else None
            found = candidates(predictions.scores[b], predictions.box_regs[b], landmark_regs, priors, self.coder, settings)
            results.append((to_numpy(found.boxes), to_numpy(found.scores), to_numpy(found.landmarks)))
        return results

    def _detect_tta(self, image: np.ndarray) -> Detections:
        """Every pass of the protocol on one BGR image, merged; then the preset's score threshold and cap."""
        assert self.tta is not None
        image_hw = (int(image.shape[0]), int(image.shape[1]))
        plans = self.plan_tta(image_hw)  # refuses passes a fixed-size file cannot take, before any runs
        bar = None
        if self.tta_progress and len(plans) >= TTA_PROGRESS_MIN_PASSES:
            from tqdm import tqdm

            bar = tqdm(total=len(plans), desc=f"TTA '{self.tta.name}'", unit="pass", leave=False)

        def progress(index: int, total: int, plan: PassPlan) -> None:
            if bar is not None:
                bar.update(index - bar.n)

        try:
            result = run_tta(
                self.tta, image, run_batch=self._run_passes, detector_scale=self.detector_scale(image_hw),
                max_pixels=self.max_pass_pixels, progress=progress,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.update(len(plans) - bar.n)
                bar.close()
        self.last_tta_notes = result.notes
        for note in result.notes:
            if note not in self._shown_notes:
                self._shown_notes.add(note)
                LOGGER.warning("%s", note)
        post = self.preset.postprocess
        keep = passes_score(result.scores, post)
        index = np.flatnonzero(keep)[: post.max_detections]
        landmarks = result.landmarks[index] if result.landmarks is not None else None
        return Detections(result.boxes[index], result.scores[index], landmarks)

    def describe(self) -> str:
        """One line naming the model that runs, its weights, the backend and the settings."""
        post, resize = self.preset.postprocess, self.preset.resize
        size = {"original": "original size", "long": f"longer side {resize.size[0]}, aspect kept"}.get(
            resize.mode, f"letterbox {resize.size[0]}x{resize.size[1]}"
        )
        weights = f" ({self.weights_path.name})" if self.weights_path is not None else ""
        return (
            f"{self.model_name}{weights} [{self.backend.name}] preset '{self.preset_name}': {size}, "
            f"score {'>' if post.strict_score else '>='} {post.score_thresh}, NMS {post.nms_thresh}"
            + (f", TTA '{self.tta.name}'" if self.tta is not None else "")
        )


def _object_presets(model: DenseFaceDetector) -> Mapping[str, InferencePreset]:
    """Presets of a model given as an object: its registry entry's (``create_model`` records the
    name), else its family's."""
    name = getattr(model, "registry_name", None)
    return get_model_entry(name).presets if isinstance(name, str) else family_presets(model.family)


def _weights_path(model: Any, entry: ModelEntry | None, weights: str | Path | None, progress: bool) -> Path | None:
    """The local weights file: the given path, a release tag, or the default release."""
    if entry is None:
        if weights is not None:
            raise FacescopeError("pass weights either inside the model or as weights=, not both")
        return None
    if weights is None:
        if not entry.weights:
            raise WeightsError(f"model '{entry.name}' has no pretrained weights; pass weights=PATH (or --weights PATH)")
        weights = "pretrained"
    return resolve_weights(entry, weights, progress)


def _choose_backend(
    backend: str, model: Any, entry: ModelEntry | None, weights: str | Path | None, path: Path | None
) -> str:
    """``"auto"`` -> onnxruntime for an ONNX file or release, torch otherwise; check explicit choices."""
    is_onnx = path is not None and (path.suffix.lower() == ".onnx" or (entry is not None and release_format(entry, weights) == "onnx"))
    if backend == "auto":
        return "onnxruntime" if is_onnx else "torch"
    if backend == "onnxruntime":
        if entry is None:
            raise FacescopeError("backend='onnxruntime' needs a registered model name and an .onnx weights file, not a built model")
        if not is_onnx:
            raise FacescopeError("backend='onnxruntime' needs an .onnx weights file (export one with `facescope export`)")
    return backend


def _torch_backend(model: Any, weights: Path | None, device: str, threads: int | None) -> tuple[Any, Any]:
    """Build (or take) the PyTorch model and its backend; a clear message when torch is missing."""
    try:
        import torch
    except ImportError:
        what = f"weights {weights.name}" if weights is not None else "this model"
        raise FacescopeError(
            f"running {what} needs PyTorch, which is not installed: {TORCH_EXTRA_HINT} (or use .onnx weights)"
        ) from None
    from facescope.inference.backends import TorchBackend
    from facescope.models.registry import create_model

    if threads is not None:
        torch.set_num_threads(int(threads))  # process-wide: documented on Detector(threads=...)
    torch_device = torch.device(device)
    built = model.to(torch_device).eval() if not isinstance(model, str) else create_model(model, weights, device=torch_device)
    return built, TorchBackend(built, torch_device)


def _fit_fixed_input(preset: InferencePreset, backend: Any, explicit: bool) -> InferencePreset:
    """A preset's ``long:N`` rule on a file with a fixed input size (e.g. insightface's
    ``*_static640.onnx``) letterboxes to that size instead: the file takes no other. Asked for
    explicitly (``input_size="long:N"``), it is refused with the size to use."""
    fixed = getattr(backend, "fixed_input", None)
    if preset.resize.mode != "long" or not fixed or len(fixed) != 4 or fixed[2] is None or fixed[3] is None:
        return preset
    height, width = fixed[2], fixed[3]
    if explicit:
        raise FacescopeError(
            f"{backend.path.name} has a fixed {width}x{height} input, so input_size='long:{preset.resize.size[0]}' cannot "
            f"run it; use input_size={width if width == height else (width, height)} or a file with dynamic sizes (`facescope export`)"
        )
    return replace(preset, resize=replace(preset.resize, mode="letterbox", size=(width, height)))


def _preset(presets: Any, name: str, model_name: str) -> InferencePreset:
    from facescope.errors import suggest

    if name not in presets:
        raise FacescopeError(f"unknown preset '{name}'{suggest(name, presets)}; {model_name} has {sorted(presets)}")
    return presets[name]
