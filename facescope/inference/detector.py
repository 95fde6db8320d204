"""The user-facing face detector: image(s) in, :class:`~facescope.structures.Detections` out.

With ONNX weights (the default backend picks onnxruntime for them) the whole path - reading,
resizing, normalising (OpenCV), the onnxruntime session, decoding and NMS (numpy) - imports no
torch. PyTorch weights run on the torch backend, which needs the ``torch`` extra.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facescope.errors import FacescopeError, WeightsError
from facescope.inference.image_io import ColorOrder, ImageLike, to_bgr
from facescope.inference.postprocess import candidates, passes_score
from facescope.inference.preprocess import InputBuffers, ResizedImage, to_blob
from facescope.inference.tta import Candidates, pass_settings, run_plans
from facescope.inference.tta_transforms import DEFAULT_MAX_PASS_PIXELS, PassPlan, ResizeTransform, plan_passes
from facescope.inference.validate import check_probability, validate_detector_options
from facescope.models.registry import (
    DEFAULT_MODEL,
    ModelEntry,
    family_presets,
    get_model_entry,
    release_format,
    release_of_file,
    resolve_tta,
    resolve_weights,
)
from facescope.models.spec import InferencePreset, InputSpec
from facescope.models.tta_specs import TTASpec, single_pass_protocol
from facescope.structures import Detections

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector

InputSize = int | tuple[int, int] | Literal["original"] | None
BackendName = Literal["auto", "torch", "onnxruntime"]
TORCH_EXTRA_HINT = 'pip install "facescope[torch]"'
TTA_PROGRESS_MIN_PASSES = 4  # a per-image progress bar is shown from this many passes on (with tta_progress)
TTA_LOGGER = "facescope.tta"  # the logger of the TTA notes (logging is imported when the first one is logged)


class Detector:
    """Detect faces with any registered model.

    Args:
        model: a registry name (see ``facescope models``) or a built PyTorch model. None: the
            architecture of ``weights`` when the file is a registered release or a facescope export
            (another file needs its model named: shapes alone cannot tell e.g. SCRFD from RetinaFace),
            else ``retinaface_mnet025``, whose default release is embedded in the package (MIT licence,
            onnxruntime, no torch, no download).
        weights: a weights file (``.onnx`` or PyTorch), a release tag, or None for the model's
            default pretrained release (embedded, or downloaded and hash-checked on first use).
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
        batch_size: most pass images per forward: images of :meth:`detect_batch` in a single pass,
            or consecutive same-size passes (a scale and its mirror, of one or more images) with TTA. Images whose network inputs
            have one size run as one ``[B, 3, H, W]`` forward; an ONNX file with a fixed batch of 1 (the
            official SCRFD files) runs them one by one inside the backend (:attr:`batches_natively` is
            False; re-export with ``facescope export`` for a dynamic batch).
        fp16: run the network in half precision (torch backend on a CUDA device only; decoding
            and NMS stay float32). Refused on CPU and on the onnxruntime backend.
        progress: progress bar when downloading weights.
        tune_process: also apply process-wide CPU tuning (glibc malloc settings of
            :mod:`facescope.allocator`); off by default so that a library call changes no global
            state. The ``facescope`` CLI turns it on.
        tta: test-time augmentation: a protocol name (``"flip"``, ``"multiscale"``, ``"retinaface"``,
            ``"shf"``, ``"dsfd"``, ``"s3fd"``, ``"pyramidbox"``; see
            :data:`facescope.models.registry.TTA_PROTOCOLS`), a :class:`~facescope.models.tta_specs.TTASpec`,
            ``"none"`` (single pass even when the preset names a protocol), or None for the preset's
            own (``preset.tta``: the DSFD and SHF papers' pyramids in those families' ``widerface`` presets, a
            single pass in SCRFD's and RetinaFace's). Every pass runs at its own size (the
            preset's resize is replaced by the protocol's scales, relative to the scale the preset
            would apply), its candidates (the preset's score threshold, or the protocol's per-pass
            one) are mapped back to the image and merged once by the protocol's NMS or box voting;
            the result keeps the preset's score threshold and ``max_detections``. Passes of one size
            (a scale and its mirror) run as one batch. The single pass runs through the same driver
            (:func:`facescope.inference.tta.run_plans`) as the protocol of one pass.
        max_pass_pixels: per-pass pixel budget of TTA; larger passes are scaled down to it and a
            note is logged once (``facescope.tta`` logger; also in :attr:`last_tta_notes`).
        tta_progress: show a progress bar over the passes of an image with many (>= 4) passes.
        model_args: builder options of a registry name (``create_model(model, weights, **model_args)``,
            e.g. ``{"deformable": False}``). A facescope checkpoint or export records the options it was
            built with and is rebuilt with them: they need not be given, and one given with another value
            is refused naming both. An ONNX file without recorded options accepts none.

    Attributes:
        model_name: the registered architecture that runs (or the class name of a given model).
        weights_license: the licence of the weights when they are a registered release, else None.
        weights_permissive: False when that licence forbids commercial use (e.g. insightface's SCRFD files).
        model_args: the builder options of the model that runs (saved form, see
            :mod:`facescope.models.options`).
        backend: the backend object (``backend.name`` is ``"torch"`` or ``"onnxruntime"``).
        model: the PyTorch model on the torch backend, None on onnxruntime.

    Example:
        >>> detector = Detector()                          # embedded RetinaFace MobileNet-0.25: onnxruntime, no torch
        >>> faces = detector.detect("group.jpg")
        >>> faces.boxes.shape, faces.landmarks.shape       # numpy float32
        ((6, 4), (6, 5, 2))
        >>> Detector("scrfd_2.5g_kps", weights="scrfd_2.5g_kps.onnx")   # any other ONNX file, also without torch
    """

    def __init__(
        self,
        model: str | DenseFaceDetector | None = None,
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
        fp16: bool = False,
        model_args: Mapping[str, Any] | None = None,
    ) -> None:
        model_args = dict(model_args or {})
        if model_args and not isinstance(model, str):
            raise FacescopeError("pass model options either inside the built model or as model_args=, not both")
        requested_tta = resolve_tta(tta)  # an unknown protocol name fails here, before any weights are read
        model = model_for_weights(weights) if model is None else model
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
        if fp16 and not self.device.startswith("cuda"):
            raise FacescopeError(f"fp16 needs a CUDA device (device='cuda'), got device '{self.device}'")
        self.weights_path = _weights_path(model, self.entry, weights, progress)
        kind = _choose_backend(backend, model, self.entry, weights, self.weights_path)
        if fp16 and kind == "onnxruntime":
            raise FacescopeError("fp16 runs on the torch backend (backend='torch'); the onnxruntime backend runs the file's float32 graph")
        release = release_of_file(self.weights_path) if self.weights_path is not None else None
        self.weights_license: str | None = release[1].license if release is not None else None
        self.weights_permissive = release is None or release[1].permissive
        if tune_process and self.device == "cpu":
            from facescope.allocator import tune_cpu_allocator

            tune_cpu_allocator()  # reuse freed buffers across frames (see facescope.allocator)
        self.model: DenseFaceDetector | None = None
        if kind == "onnxruntime":
            assert self.entry is not None and self.weights_path is not None
            from facescope.inference.backends import OnnxRuntimeBackend

            self.backend: Any = OnnxRuntimeBackend(self.weights_path, self.entry, self.device, threads)
            self.model_args = _onnx_model_args(self.backend.metadata, model_args, self.weights_path)
            self.model_name = self.entry.name
            self.input_spec: InputSpec = self.entry.input_spec
            self.anchor_generator = self.entry.head.anchor_generator()
            self.coder = self.entry.head.coder
            self.has_landmarks = self.entry.head.has_landmarks
            presets = self.entry.presets
        else:
            self.model, self.backend = _torch_backend(model, self.weights_path, self.device, threads, model_args, fp16)
            self.model_args = dict(getattr(self.model, "model_args", {}))
            self.model_name = model if isinstance(model, str) else getattr(self.model, "registry_name", type(model).__name__)
            self.input_spec = self.model.input_spec
            self.anchor_generator = self.model.anchor_generator
            self.coder = self.model.coder
            self.has_landmarks = bool(self.model.has_landmarks)
            presets = self.entry.presets if self.entry is not None else _object_presets(self.model)
        if self.model is not None and not isinstance(model, str) and not getattr(self.model, "weights_loaded", True):
            warnings.warn(
                f"{self.model_name} has randomly initialised weights (none were loaded or trained): its detections "
                "are meaningless; build it with create_model(name, weights) or pass Detector(name, weights)",
                stacklevel=2,
            )
        self.preset_name = preset
        chosen = _preset(presets, preset, self.model_name).with_overrides(score_thresh, nms_thresh, input_size)
        self.tta: TTASpec | None = requested_tta if tta is not None else resolve_tta(chosen.tta)
        self._use_preset(_fit_fixed_input(replace(chosen, tta=self.tta), self.backend, explicit=input_size is not None))
        self.input_buffers = InputBuffers(self.input_spec, self.preset.resize.pad_value)  # one image per forward: no copies
        mismatch = getattr(self.backend, "calibration_mismatch", lambda size: None)(self.preset.resize.size_text())
        if mismatch:
            import logging

            logging.getLogger("facescope").warning("%s", mismatch)
        self.batch_size = max(int(batch_size), 1)
        self.max_pass_pixels = int(max_pass_pixels)
        self.tta_progress = bool(tta_progress)
        self.last_tta_notes: tuple[str, ...] = ()
        self._shown_notes: set[str] = set()
        if self.tta is None and self.preset.resize.mode == "letterbox" and hasattr(self.backend, "check_input_hw"):
            width, height = self.preset.resize.size  # a fixed-size file and another letterbox: refused now, not per image
            self.backend.check_input_hw((height, width))
        if self.tta is not None and getattr(self.backend, "fixed_input", None) is not None:
            # a fixed-size file: plan an image of the letterbox canvas now, so a protocol whose passes
            # cannot fit is refused before any image is read (every image is checked again when it runs)
            width, height = self.preset.resize.size
            self.plan_tta((height, width))

    @property
    def batches_natively(self) -> bool:
        """Whether :meth:`detect_batch` runs same-size network inputs as one forward pass (False for an
        ONNX file with a fixed batch of 1, which the backend runs image by image)."""
        return bool(getattr(self.backend, "batched", True))

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

    def track(
        self,
        source: str | Path | int | Iterable[np.ndarray],
        *,
        tracker: Any = None,
        every: int = 1,
        target_fps: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        fps: float | None = None,
    ) -> Iterator[Any]:
        """Detect and track faces in a video: yields one
        :class:`~facescope.inference.video.TrackedFrame` per processed frame (``index``,
        ``timestamp``, BGR ``image``, ``faces.detections`` and ``faces.track_ids``).

        Args:
            source: a video file, a camera index, an rtsp/http(s) URL, or an iterable of BGR arrays.
            tracker: a :class:`~facescope.tracking.TrackerConfig` or :class:`~facescope.tracking.FaceTracker`
                (default: ByteTrack's settings). Its second association uses detections scored
                between ``low_thresh`` (0.1) and ``high_thresh`` (0.5): build the detector with
                ``score_thresh=0.1`` for it to see them (the CLI does so for video).
            every: process every N-th frame; ``target_fps``: or about this many frames per second.
            start, end: the time range in seconds of the source.
            fps: the rate of an array iterable (timestamps), or a replacement for a source's wrong one.

        A test-time augmentation protocol runs on every processed frame (as slow as on photos).
        Raises :class:`~facescope.inference.video.VideoOpenError` before the first frame when the
        source cannot be opened, and :class:`~facescope.inference.video.VideoStreamError` after the
        last good frame when a file is truncated or a live source drops.
        """
        from facescope.inference.video import FrameSelection, track_source

        selection = FrameSelection(every=every, target_fps=target_fps, start=start, end=end)  # checked now, not at the first frame
        return track_source(lambda image: self.detect(image, color_order="bgr"), source, tracker=tracker, selection=selection, fps=fps)

    def _detect_bgr(self, images: list[np.ndarray]) -> list[Detections]:
        """Plan every image (refusing passes a fixed-size file cannot take before any runs), run the
        plans through the one driver, then apply the preset's score threshold and cap."""
        plans = [self.plan_tta((int(image.shape[0]), int(image.shape[1]))) for image in images]
        bar = None
        if self.tta is not None and self.tta_progress and max(len(p) for p in plans) >= TTA_PROGRESS_MIN_PASSES:
            from tqdm import tqdm

            bar = tqdm(total=sum(len(p) for p in plans), desc=f"TTA '{self.tta.name}'", unit="pass", leave=False)

        def progress(index: int, total: int, plan: PassPlan) -> None:
            if bar is not None:
                bar.update(index - bar.n)

        try:
            results = run_plans(
                self.protocol, images, plans, self._run_passes, batch_key=self._input_hw,
                max_batch=self.batch_size, progress=progress,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.update(bar.total - bar.n)
                bar.close()
        post = self.preset.postprocess
        found = []
        for result in results:
            self._show_notes(result.notes)
            index = np.flatnonzero(passes_score(result.scores, post))[: post.max_detections]
            landmarks = result.landmarks[index] if result.landmarks is not None else None
            found.append(Detections(result.boxes[index], result.scores[index], landmarks))
        return found

    def _show_notes(self, notes: tuple[str, ...]) -> None:
        """Keep the notes of the last image; log each distinct note once per detector."""
        self.last_tta_notes = notes
        for note in notes:
            if note not in self._shown_notes:
                import logging

                self._shown_notes.add(note)
                logging.getLogger(TTA_LOGGER).warning("%s", note)

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
        """The passes the detector runs on an ``image_hw`` image (one, the preset's resize, without a
        protocol), checked against a fixed-size ONNX input, without running them."""
        plans = plan_passes(
            self.protocol, image_hw, detector_scale=self.detector_scale(image_hw), max_pixels=self.max_pass_pixels,
            resize=self.preset.resize, input_spec=self.input_spec, model=self.model_name,
        )  # fmt: skip
        for plan in plans:
            self._input_hw(plan)
        return plans

    def _input_hw(self, plan: PassPlan) -> tuple[int, int]:
        """Network input of a pass: the preset's (letterbox canvas or padded original) for the single
        pass; for a protocol's pass its size padded (bottom/right) to the size divisor, or the file's
        fixed size when the pass fits inside it (a letterbox with the offset at 0, 0)."""
        if isinstance(plan.transform, ResizeTransform):
            return plan.transform.plan.input_hw
        pass_hw = plan.target_hw
        divisor = max(self.input_spec.size_divisor, 1)
        input_hw = (-(-pass_hw[0] // divisor) * divisor, -(-pass_hw[1] // divisor) * divisor)
        fixed = getattr(self.backend, "fixed_input", None)
        fixed_h, fixed_w = fixed[2:4] if fixed is not None and len(fixed) == 4 else (None, None)
        if fixed_h is None and fixed_w is None:
            return input_hw
        if (fixed_h is not None and pass_hw[0] > fixed_h) or (fixed_w is not None and pass_hw[1] > fixed_w):
            raise FacescopeError(
                f"{self.backend.path.name} has a fixed {fixed_w}x{fixed_h} input but TTA protocol '{self.protocol.name}' "
                f"needs {pass_hw[1]}x{pass_hw[0]} for pass '{plan.label}' x{plan.scale:.3g}; use an ONNX file with "
                "dynamic axes (`facescope export`), another protocol or a smaller input size"
            )
        return (fixed_h or input_hw[0], fixed_w or input_hw[1])

    def _run_passes(self, pass_images: list[np.ndarray], plans: list[PassPlan]) -> list[Candidates]:
        """Pass images of one network input size -> per image the candidates (score threshold,
        pre-NMS top-k, decode; no NMS) in that pass image's pixels, in the backend's array kind
        (torch tensors stay on their device). One forward for all."""
        input_hw = self._input_hw(plans[0])
        items = [ResizedImage(image, input_hw, (1.0, 1.0), image.shape[:2]) for image in pass_images]
        if len(items) == 1:  # one image per forward (the usual single pass): normalised into a reused buffer
            batch = self.input_buffers(items[0])
        else:
            batch = to_blob(items, self.input_spec, self.preset.resize.pad_value)
        predictions = self.backend(batch)
        priors = self.anchor_generator.priors_like(input_hw, predictions.box_regs)
        results: list[Candidates] = []
        for b in range(len(pass_images)):
            landmark_regs = predictions.landmark_regs[b] if predictions.landmark_regs is not None else None
            found = candidates(predictions.scores[b], predictions.box_regs[b], landmark_regs, priors, self.coder, self._pass_settings)
            results.append((found.boxes, found.scores, found.landmarks))
        return results

    def describe(self) -> str:
        """One line naming the model that runs, its weights, the backend and the settings."""
        post, resize = self.preset.postprocess, self.preset.resize
        size = {"original": "original size", "long": f"longer side {resize.size[0]}, aspect kept"}.get(
            resize.mode, f"letterbox {resize.size[0]}x{resize.size[1]}"
        )
        if self.tta is not None:  # the passes run at the protocol's own sizes; the preset's is only their base
            size = f"TTA '{self.tta.name}' passes at the protocol's scales ({'relative to ' + size if resize.mode != 'original' else 'of the original size'})"
        weights = f" ({self.weights_path.name})" if self.weights_path is not None else ""
        return (
            f"{self.model_name}{weights} [{self.backend.name}] preset '{self.preset_name}': {size}, "
            f"score {'>' if post.strict_score else '>='} {post.score_thresh}, NMS {post.nms_thresh}"
            + ("" if self.weights_permissive else f"; weights licence: {self.weights_license}")
        )

    def with_thresholds(self, score_thresh: float | None = None, nms_thresh: float | None = None) -> Detector:
        """A detector that shares this one's network (backend, weights, memory) and differs only in
        its score and NMS IoU thresholds (None keeps this one's): it finds what
        ``Detector(..., score_thresh=..., nms_thresh=...)`` with the same other options finds.
        The detection service uses it for a request's own thresholds, without loading the model again."""
        for name, value in (("score_thresh", score_thresh), ("nms_thresh", nms_thresh)):
            if value is not None:
                check_probability(name, value)
        if score_thresh is None and nms_thresh is None:
            return self
        view = copy.copy(self)
        view._use_preset(self.preset.with_overrides(score_thresh, nms_thresh))
        view._shown_notes = set()
        return view

    def _use_preset(self, preset: InferencePreset) -> None:
        """Adopt ``preset`` (its ``tta`` already resolved) and what follows from its thresholds: the
        protocol that runs (the TTA, or the single pass as the protocol of one pass) and its per-pass rules."""
        self.preset = preset
        post = preset.postprocess
        self.protocol = self.tta if self.tta is not None else single_pass_protocol(post.nms_thresh, post.nms_pixel_offset)
        self._pass_settings = pass_settings(self.protocol, post)


def model_for_weights(weights: str | Path | None) -> str:
    """The architecture to run when none is named: the weights file's, or :data:`DEFAULT_MODEL`.

    A file that is neither a registered release nor a facescope export is refused: its output shapes
    fit several architectures that decode differently, and guessing would give wrong boxes silently."""
    if weights is None or str(weights) == "pretrained":
        return DEFAULT_MODEL
    path = Path(weights).expanduser()
    if not path.is_file():  # a release tag of the default model (or a missing file, reported later)
        return DEFAULT_MODEL
    from facescope.inference.backends import architecture_of_file

    name = architecture_of_file(path)
    if name is None:
        raise FacescopeError(
            f"{path.name} is neither a registered release nor a facescope export, so its architecture is unknown; "
            "name it with --model (model= in Python); `facescope models` lists them"
        )
    return name


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


def _onnx_model_args(metadata: Mapping[str, str], given: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The options an ONNX file records; given ones must agree with them (checked without torch)."""
    from facescope.models.options import check_agreement, coerce_like, saved_from_json

    saved = saved_from_json(metadata.get("facescope_model_args"), str(path))
    if saved is None:
        if given:
            raise FacescopeError(
                f"{path} records no model options, so options {sorted(given)} cannot be checked against the graph it holds; "
                "leave them out or export the file with `facescope export`"
            )
        return {}
    check_agreement(saved, {key: coerce_like(saved.get(key), value, key) for key, value in given.items()}, str(path))
    unknown = sorted(set(given) - set(saved))
    if unknown:
        raise FacescopeError(f"{path} was exported without model option(s) {unknown}; it records {sorted(saved)}")
    return saved


def _torch_backend(
    model: Any, weights: Path | None, device: str, threads: int | None, model_args: Mapping[str, Any], fp16: bool = False
) -> tuple[Any, Any]:
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
    if isinstance(model, str):
        built = create_model(model, weights, device=torch_device, **model_args)
    else:
        built = model.to(torch_device).eval()
    return built, TorchBackend(built, torch_device, fp16=fp16)


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
