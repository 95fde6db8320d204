"""Inference backends: run a normalised ``ndarray[B, 3, H, W]`` batch, return activated predictions.

* :class:`OnnxRuntimeBackend`: onnxruntime + numpy; imports no torch. Before it runs anything it
  checks that the file fits the chosen architecture (:func:`check_onnx_fits`).
* :class:`TorchBackend`: eager PyTorch; its predictions stay torch tensors (on the model's device)
  so post-processing runs there too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from facescope.errors import FacescopeError, WeightsError
from facescope.inference.onnx_graph import optimized_model_bytes
from facescope.inference.postprocess import Predictions
from facescope.models.registry import ModelEntry, entries, find_release, release_of_file
from facescope.models.weights import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.base import DenseFaceDetector

PROBE_HW = (64, 64)  # dynamic-size files are probed at this input (a multiple of every stride)
QUANTIZATION_KEY = "facescope_quantization"  # metadata written by `facescope quantize`


class Backend(Protocol):
    name: str

    def __call__(self, batch: np.ndarray) -> Predictions | Any:
        """``ndarray[B, 3, H, W]`` normalised input -> activated predictions (levels concatenated)."""
        ...


class TorchBackend:
    """Eager PyTorch on an inference-optimised copy of the model (BatchNorm folded into the convs,
    channels-last layout; see :mod:`facescope.inference.optimize`). The caller's model is untouched.
    ``optimize=False`` runs the model as it is. ``fp16=True`` (CUDA only) runs the network in half
    precision; its raw outputs are cast to float32, so activation, decoding and NMS run in float32."""

    name = "torch"

    def __init__(self, model: DenseFaceDetector, device: Any, optimize: bool = True, fp16: bool = False) -> None:
        from facescope.inference.optimize import optimize_for_inference

        if fp16 and device.type != "cuda":
            raise FacescopeError(f"fp16 needs a CUDA device, got device '{device}'")
        self.device = device
        channels_last = device.type == "cpu"
        self.model = optimize_for_inference(model, channels_last) if optimize else model.eval()
        self.channels_last = optimize and channels_last and self.model is not model
        self.fp16 = fp16
        if fp16:  # the optimised copy is the backend's own; a model run as it is gets copied first
            self.model = (self.model if self.model is not model else copy.deepcopy(model)).half()

    def __call__(self, batch: np.ndarray) -> Any:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device)
            if self.fp16:
                tensor = tensor.half()
            if self.channels_last:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            outputs = self.model(tensor)
            if self.fp16:  # activation, decoding and NMS in float32
                outputs = outputs.map(lambda t: t.float())
            return self.model.activate(outputs)


class OnnxRuntimeBackend:
    """onnxruntime on an ONNX file with per-level ``score_*``, ``bbox_*`` [, ``kps_*``] outputs.

    Accepts facescope exports (batched, named outputs, see :mod:`facescope.export.onnx`) and the
    official SCRFD files: numbered outputs in the same order, with or without a batch dimension,
    dynamic or fixed input size. Files whose input batch is fixed (or whose outputs have no batch
    dimension) run one image at a time. Scores in the file are probabilities.

    Args:
        path: the ``.onnx`` file.
        entry: the registry entry of the architecture the file is meant to be.
        device: ``"cpu"`` or ``"cuda[:i]"`` (CUDA only when onnxruntime has the provider).
        threads: intra-op threads of the session (None: onnxruntime's default).
    """

    name = "onnxruntime"

    def __init__(self, path: Path, entry: ModelEntry, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        payload = Path(path).read_bytes()
        sha256 = file_sha256(path)  # shared with the release and licence look-ups of the same file
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # errors only: official files annotate 640x640 output shapes and warn at any other size
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if threads is not None and int(threads) > 1:
            # idle pool threads sleep instead of spinning: on a CPU shared with other work, spinning threads
            # made 2 threads slower than 1 (benchmarks/README.md, the sweep)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            # exact graph rewrites (merged sibling convolutions), cached on disk: see onnx_graph
            model = optimized_model_bytes(payload, sha256, max(PROBE_HW[0], entry.input_spec.size_divisor))
            self.session = ort.InferenceSession(model, options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise WeightsError(f"onnxruntime cannot load {path}: {exc}")
        self.path = Path(path)
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        # fixed (int) dims of the input; None where dynamic
        self.fixed_input = [d if isinstance(d, int) and d > 0 else None for d in graph_input.shape]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.num_levels = entry.head.num_levels
        self.with_landmarks = entry.head.has_landmarks
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.metadata: dict[str, str] = dict(metadata)  # facescope exports: architecture and model options
        probe_shapes = self._probe_output_shapes(entry.input_spec.size_divisor)
        self.batched = len(probe_shapes[0]) == 3 and self.fixed_input[0] is None
        check_onnx_fits(self.path, entry, probe_shapes, self._probe_hw, metadata, sha256)
        # what `facescope quantize` recorded (None for a float file)
        self.quantization = json.loads(metadata[QUANTIZATION_KEY]) if QUANTIZATION_KEY in metadata else None

    def calibration_mismatch(self, size_text: str) -> str | None:
        """A warning when an int8 file runs at another input size than it was calibrated at
        (activation ranges depend on the scale: an off-size int8 file can lose faces silently)."""
        calibrated = (self.quantization or {}).get("calibration", {}).get("input_size")
        if calibrated is None or calibrated == size_text:
            return None
        return (
            f"{self.path.name} was calibrated at {calibrated} but runs at {size_text}: int8 activation ranges depend on "
            f"the input scale and faces can vanish; run it at {calibrated} or quantise again at this size"
        )

    def _probe_output_shapes(self, size_divisor: int) -> list[tuple[int, ...]]:
        """Output shapes for one tiny (or the file's fixed-size) input: what the file computes."""
        fixed_h, fixed_w = self.fixed_input[2:4] if len(self.fixed_input) == 4 else (None, None)
        side = max(PROBE_HW[0], size_divisor)
        self._probe_hw = (fixed_h or side, fixed_w or side)
        probe = np.zeros((1, 3, *self._probe_hw), dtype=np.float32)
        try:
            outputs = self.session.run(self.output_names, {self.input_name: probe})
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise WeightsError(f"{self.path} fails on a {self._probe_hw[1]}x{self._probe_hw[0]} probe input: {exc}")
        return [tuple(o.shape) for o in outputs]

    def __call__(self, batch: np.ndarray) -> Predictions:
        self._check_input_size(batch.shape)
        if self.batched or len(batch) == 1:
            return self._predictions(self.session.run(self.output_names, {self.input_name: batch}))
        per_image = [
            self._predictions(self.session.run(self.output_names, {self.input_name: batch[i : i + 1]}))
            for i in range(len(batch))
        ]
        return _stack(per_image)

    def _check_input_size(self, shape: tuple[int, ...]) -> None:
        self.check_input_hw((shape[2], shape[3]))

    def check_input_hw(self, input_hw: tuple[int, int]) -> None:
        """Refuse a network input size a fixed-size file cannot take, saying how to choose one (CLI and Python)."""
        fixed_h, fixed_w = self.fixed_input[2:4] if len(self.fixed_input) == 4 else (None, None)
        if (fixed_h is not None and fixed_h != input_hw[0]) or (fixed_w is not None and fixed_w != input_hw[1]):
            cli = f"{fixed_w}" if fixed_w == fixed_h else f"{fixed_w}x{fixed_h}"
            python = f"{fixed_w}" if fixed_w == fixed_h else f"({fixed_w}, {fixed_h})"
            raise FacescopeError(
                f"{self.path.name} has a fixed {fixed_w}x{fixed_h} input but this preset feeds {input_hw[1]}x{input_hw[0]}; "
                f"use --input-size {cli} (Python: input_size={python}) or a file with dynamic axes (`facescope export`)"
            )

    def _predictions(self, outputs: list[np.ndarray]) -> Predictions:
        # unbatched official files: (N_l, C) -> (1, N_l, C)
        arrays = [o if o.ndim == 3 else o[None] for o in outputs]
        n = self.num_levels
        scores = np.concatenate([a[..., 0] for a in arrays[:n]], axis=1)
        boxes = np.concatenate(arrays[n : 2 * n], axis=1)
        landmarks = np.concatenate(arrays[2 * n : 3 * n], axis=1) if self.with_landmarks else None
        return Predictions(scores, boxes, landmarks)


def expected_output_shapes(entry: ModelEntry, input_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """``(rows, channels)`` of every output an export of ``entry`` has for ``input_hw``."""
    rows = entry.head.rows_per_level(input_hw)
    kinds = [1, 4] + ([10] if entry.head.has_landmarks else [])
    return [(r, channels) for channels in kinds for r in rows]


def _fits_shapes(entry: ModelEntry, shapes: list[tuple[int, ...]], input_hw: tuple[int, int]) -> bool:
    actual = [(s[-2], s[-1]) if len(s) >= 2 else s for s in shapes]
    return actual == expected_output_shapes(entry, input_hw)


def _identity(metadata: dict[str, str], sha256: str) -> tuple[str, str] | None:
    """``(architecture, how it is known)`` when the file says or is a registered release."""
    if "facescope_model" in metadata:
        return metadata["facescope_model"], f"a facescope export of '{metadata['facescope_model']}'"
    release = find_release(sha256)
    if release is not None:
        entry, spec = release
        return entry.name, f"the released weights '{entry.name}.{spec.tag}' (sha256 {sha256[:12]}...)"
    return None


def architecture_of_file(path: Path) -> str | None:
    """The registered architecture a weights file is known to be: a registered release (by location
    or sha256), or a facescope ONNX export (its ``facescope_model`` metadata); None when only its
    shapes could tell, which cannot tell apart architectures with the same layout."""
    release = release_of_file(path)
    if release is not None:
        return release[0].name
    if path.suffix.lower() != ".onnx":
        return None
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the backend that loads it
        return None
    return session.get_modelmeta().custom_metadata_map.get("facescope_model")


def check_onnx_fits(
    path: Path,
    entry: ModelEntry,
    shapes: list[tuple[int, ...]],
    probe_hw: tuple[int, int],
    metadata: dict[str, str],
    sha256: str,
) -> None:
    """Refuse an ONNX file that is not the architecture ``entry``, naming those it does fit.

    What a file fits: for a facescope export (``facescope_model`` metadata) or a registered
    release (known sha256), exactly that architecture; for any other file, every registered
    architecture whose head layout gives the output count, per-level row counts and channels
    (1 score, 4 box, 10 landmark values) the file produced for the probe input. Output shapes
    cannot tell apart two architectures with the same layout but different decoding (e.g. SCRFD's
    and the RetinaFace port's 3 levels of 2 anchors), so files of unknown origin are accepted on
    shapes alone.
    """
    identity = _identity(metadata, sha256)
    fits = [identity[0]] if identity is not None else [e.name for e in entries() if _fits_shapes(e, shapes, probe_hw)]
    if entry.name in fits:
        _check_export_metadata(path, metadata, entry)
        return
    if identity is not None:
        reason = f"it is {identity[1]}"
    elif not _fits_shapes(entry, shapes, probe_hw):
        got = [(s[-2], s[-1]) if len(s) >= 2 else s for s in shapes]
        need = expected_output_shapes(entry, probe_hw)
        reason = (
            f"for a {probe_hw[1]}x{probe_hw[0]} input its {len(shapes)} outputs have (rows, channels) {got}, "
            f"'{entry.name}' needs {len(need)} outputs {need}"
        )
    else:  # pragma: no cover - an entry fitting by shape is in `fits`
        reason = "it does not fit"
    fit_text = f"it fits {', '.join(sorted(fits))}" if fits else "it fits no registered architecture"
    raise WeightsError(f"{path} does not fit model '{entry.name}': {reason}; {fit_text}")


def _check_export_metadata(path: Path, metadata: dict[str, str], entry: ModelEntry) -> None:
    """Refuse a facescope export whose recorded layout differs from the entry's."""
    if "facescope_model" not in metadata:
        return
    expected = {
        "facescope_strides": list(entry.head.strides),
        "facescope_anchors_per_level": [len(level) for level in entry.head.anchors],
        "facescope_has_landmarks": bool(entry.head.has_landmarks),
    }
    problems = [
        f"{key.removeprefix('facescope_')} {metadata[key]} != {json.dumps(value)}"
        for key, value in expected.items()
        if key in metadata and json.loads(metadata[key]) != value
    ]
    if problems:
        raise WeightsError(f"{path} does not fit this architecture: " + "; ".join(problems))


def _stack(items: list[Predictions]) -> Predictions:
    landmarks = np.concatenate([p.landmark_regs for p in items]) if items[0].landmark_regs is not None else None
    return Predictions(np.concatenate([p.scores for p in items]), np.concatenate([p.box_regs for p in items]), landmarks)
