"""Export any registered detector to ONNX, and prove the file computes what the PyTorch model does.

Graph interface (the layout :class:`~facescope.inference.backends.OnnxRuntimeBackend` reads, and the
one of the official SCRFD ONNX files):

* input ``input``: ``float32[B, 3, H, W]``, already normalised as the model's
  :class:`~facescope.models.spec.InputSpec` says (``(pixel - mean) / std`` in its colour order);
  ``H`` and ``W`` multiples of ``size_divisor``. ``B``, ``H`` and ``W`` are dynamic unless the file
  was exported with ``dynamic=False``.
* outputs, grouped by kind and, within a kind, ordered by pyramid level (stride ascending)::

      score_{s}  float32[B, N_s, 1]   face probabilities (the model's ``scores_from_logits``)
      ...
      bbox_{s}   float32[B, N_s, 4]   raw box regressions, in the model's own coding
      ...
      kps_{s}    float32[B, N_s, 10]  raw landmark regressions (only for models with landmarks)

  ``N_s = ceil(H / s) * ceil(W / s) * A_s`` rows ordered (row, column, anchor), the order of
  :class:`~facescope.ops.anchors.AnchorGenerator`. E.g. SCRFD at 640x640:
  ``score_8 [B, 12800, 1]``, ``score_16 [B, 3200, 1]``, ``score_32 [B, 800, 1]``, then ``bbox_*``, ``kps_*``.
  Levels sharing a stride are numbered among themselves (SHF: ``score_8_0``, ``score_8_1``, ``score_8_2``).

Decoding (priors + coder), score thresholding and NMS stay outside the graph, in
:mod:`facescope.inference.postprocess`, so one file serves every preset.

The file's ``metadata_props`` record the architecture (``facescope_model``, ``facescope_family``,
``facescope_strides``, ``facescope_anchors_per_level``, ``facescope_has_landmarks``,
``facescope_input_spec`` as JSON, ``facescope_box_coding``), the builder options it was built with
(``facescope_model_args``, JSON; see :mod:`facescope.models.options`), the export input size and the
facescope version, so a backend can refuse a file that does not fit the architecture it is given and
``create_model(name, "file.onnx")`` rebuilds the model without the options being repeated.

Example:
    >>> from facescope.export import export_onnx
    >>> result = export_onnx("scrfd_500m_kps", "scrfd_500m_kps.onnx", weights="scrfd_500m_kps_official.onnx")
    >>> result.max_abs_diff < 1e-4
    True
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from facescope.errors import FacescopeError
from facescope.fileio import atomic_path
from facescope.models.base import DenseFaceDetector
from facescope.models.registry import create_model
from facescope.models.spec import ResizeSpec

MIN_OPSET = 17
INPUT_NAME = "input"
FORMAT_VERSION = "facescope-dense-v1"
DEFAULT_TOLERANCE = 1e-3  # timm's ONNX parity bound; facescope exports are typically <= 1e-5


class ExportError(FacescopeError):
    """An export could not be produced or did not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ParityCheck:
    """onnxruntime vs eager PyTorch on one input.

    Attributes:
        input_shape: ``(B, 3, H, W)`` of the checked input.
        max_abs_diff: largest absolute difference over every output element.
        worst_output: name of the output holding that difference.
    """

    input_shape: tuple[int, int, int, int]
    max_abs_diff: float
    worst_output: str


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and how well it matched the PyTorch model."""

    path: Path
    model_name: str
    opset: int
    output_names: list[str]
    dynamic: bool
    simplified: bool
    checks: list[ParityCheck] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=float("nan"))


class DenseExportGraph(nn.Module):
    """``images -> (score_*, bbox_*, kps_*)``: the traced interface of any :class:`DenseFaceDetector`."""

    def __init__(self, detector: DenseFaceDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """``Tensor[B, 3, H, W]`` -> per-level ``[B, N_l, 1]`` scores, ``[B, N_l, 4]``, ``[B, N_l, 10]``."""
        outputs = self.detector(images)
        # (B, N_l) -> (B, N_l, 1): the official files' score layout
        scores = [self.detector.scores_from_logits(level).unsqueeze(-1) for level in outputs.cls_logits]
        landmarks = list(outputs.landmark_regs) if self.detector.has_landmarks and outputs.landmark_regs else []
        return tuple(scores + list(outputs.box_regs) + landmarks)


def output_names(detector: DenseFaceDetector) -> list[str]:
    """``score_{s}`` for every stride, then ``bbox_{s}``, then ``kps_{s}`` when the model has landmarks.

    Levels that share a stride (SHF's three branches, all at stride 8) are told apart by their index among
    them: ``score_8_0``, ``score_8_1``, ``score_8_2`` (ONNX output names must be unique).
    """
    kinds = ["score", "bbox"] + (["kps"] if detector.has_landmarks else [])
    strides = list(detector.anchor_generator.strides)
    levels = [
        f"{stride}_{strides[:i].count(stride)}" if strides.count(stride) > 1 else f"{stride}" for i, stride in enumerate(strides)
    ]
    return [f"{kind}_{level}" for kind in kinds for level in levels]


def export_metadata(detector: DenseFaceDetector, model_name: str, input_hw: tuple[int, int], dynamic: bool) -> dict[str, str]:
    """The ``metadata_props`` written into an export (all values strings, JSON where structured)."""
    from facescope import __version__

    coder = detector.coder
    return {
        "facescope_format": FORMAT_VERSION,
        "facescope_version": __version__,
        "facescope_model": model_name,
        "facescope_family": detector.family,
        "facescope_strides": json.dumps(list(detector.anchor_generator.strides)),
        "facescope_anchors_per_level": json.dumps(list(detector.anchor_generator.num_anchors_per_level)),
        "facescope_has_landmarks": json.dumps(bool(detector.has_landmarks)),
        "facescope_input_spec": json.dumps(dataclasses.asdict(detector.input_spec)),
        "facescope_box_coding": json.dumps({"coder": type(coder).__name__, **dataclasses.asdict(coder)}),
        "facescope_export_input_hw": json.dumps(list(input_hw)),
        "facescope_dynamic_axes": json.dumps(dynamic),
        "facescope_outputs": ", ".join(output_names(detector)),
        "facescope_score_activation": "probability",
        # the builder options (file-valued ones with their content), so the file rebuilds its model
        "facescope_model_args": json.dumps(dict(getattr(detector, "model_args", {})), sort_keys=True),
    }


def export_onnx(
    model: str | DenseFaceDetector,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    model_name: str | None = None,
    opset: int = MIN_OPSET,
    input_size: int | tuple[int, int] = 640,
    dynamic: bool = True,
    simplify: bool = False,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    verify_images: Sequence[np.ndarray] | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Export a detector to ONNX, check it with ``onnx.checker`` and against eager PyTorch.

    Args:
        model: a registry name or a built model.
        out: the ``.onnx`` file to write (written atomically: nothing is left on failure).
        weights: weights for a registry name (path, release tag or ``"pretrained"``; None = random init).
        model_name: name recorded in the metadata (defaults to the registry name / class name).
        opset: ONNX opset, at least 17.
        input_size: trace size, an int (square) or ``(width, height)``; with ``dynamic=False`` the only size.
        dynamic: dynamic batch, height and width.
        simplify: run onnx-simplifier (``pip install onnxsim``) before the checks.
        verify: run the parity checks (one input at ``input_size``; with dynamic axes also a batch of 2
            at a second size).
        tolerance: largest allowed absolute difference between onnxruntime and PyTorch outputs.
        verify_images: BGR uint8 images for the checks instead of the built-in synthetic scene.
        model_args: builder options of a registry name (``create_model(model, weights, **model_args)``);
            a weights file that records its own needs none, and one that disagrees is refused.

    Returns:
        :class:`ExportResult` with the per-input differences.

    Raises:
        ExportError: bad arguments, a failed export, or a difference above ``tolerance``.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: facescope exports need opset >= {MIN_OPSET}")
    detector, name = _load(model, weights, model_name, model_args or {})
    opset = _opset_for(detector, opset, explicit=opset != MIN_OPSET)
    width, height = (input_size, input_size) if isinstance(input_size, int) else input_size
    divisor = detector.input_spec.size_divisor
    if width <= 0 or height <= 0 or width % divisor or height % divisor:
        raise ExportError(f"input size {width}x{height} must be positive multiples of {divisor} for {name}")
    out = Path(out)
    metadata = export_metadata(detector, name, (height, width), dynamic)
    result = ExportResult(out, name, opset, output_names(detector), dynamic, simplify, metadata=metadata)
    with atomic_path(out, ".onnx.tmp") as tmp:  # a failed check raises: no file is written
        _trace_to_file(detector, tmp, (height, width), opset, dynamic)
        _finish_graph(tmp, metadata, simplify)
        if verify:
            result.checks = verify_export(detector, tmp, _check_inputs(detector, (height, width), dynamic, verify_images), tolerance)
    return result


def _load(
    model: str | DenseFaceDetector, weights: str | Path | None, model_name: str | None, model_args: Mapping[str, Any]
) -> tuple[DenseFaceDetector, str]:
    if isinstance(model, DenseFaceDetector):
        if weights is not None or model_args:
            raise ExportError("pass weights and model options either inside the model or as arguments, not both")
        return model.eval(), model_name or type(model).__name__
    return create_model(model, weights, progress=True, **model_args).eval(), model_name or model


DEFORM_CONV_OPSET = 19  # ONNX DeformConv


def _opset_for(detector: DenseFaceDetector, opset: int, explicit: bool) -> int:
    """Deformable convolutions (RetinaFace paper variant) need ONNX's DeformConv, added in opset 19."""
    from torchvision.ops import DeformConv2d

    if not any(isinstance(m, DeformConv2d) for m in detector.modules()):
        return opset
    if opset < DEFORM_CONV_OPSET and explicit:
        raise ExportError(f"this model has deformable convolutions, which need opset >= {DEFORM_CONV_OPSET} (got {opset})")
    _register_deform_conv_symbolic()
    return max(opset, DEFORM_CONV_OPSET)


def _register_deform_conv_symbolic() -> None:
    """Map ``torchvision::deform_conv2d`` to ONNX ``DeformConv`` (inputs X, W, offset, B[, mask])."""
    from torch.onnx import symbolic_helper

    def const(value: object, name: str) -> int:
        return symbolic_helper._get_const(value, "i", name)

    def deform_conv2d(g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, offset_groups, use_mask):  # noqa: ANN001, ANN202
        inputs = [x, weight, offset, bias] + ([mask] if symbolic_helper._get_const(use_mask, "b", "use_mask") else [])
        pad = [const(pad_h, "pad_h"), const(pad_w, "pad_w")]
        return g.op(
            "DeformConv",
            *inputs,
            strides_i=[const(stride_h, "stride_h"), const(stride_w, "stride_w")],
            pads_i=pad + pad,
            dilations_i=[const(dil_h, "dil_h"), const(dil_w, "dil_w")],
            group_i=const(groups, "groups"),
            offset_group_i=const(offset_groups, "offset_groups"),
        )

    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv2d, DEFORM_CONV_OPSET)


def _trace_to_file(detector: DenseFaceDetector, path: Path, input_hw: tuple[int, int], opset: int, dynamic: bool) -> None:
    """Trace with the TorchScript exporter (BatchNorm is folded into the convolutions in eval mode)."""
    names = output_names(detector)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
        dynamic_axes.update({n: {0: "batch", 1: f"anchors_{n.split('_')[1]}"} for n in names})
    example = torch.zeros(1, 3, *input_hw)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation / tracer warnings
            torch.onnx.export(
                DenseExportGraph(detector),
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=names,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many exception types
        raise ExportError(f"torch.onnx.export failed for opset {opset}: {type(exc).__name__}: {exc}") from exc


def _finish_graph(path: Path, metadata: dict[str, str], simplify: bool) -> None:
    """Strip the wrapper's name prefix, optionally simplify, add metadata, run ``onnx.checker``."""
    import onnx

    proto = onnx.load(str(path))
    _strip_prefix(proto.graph, "detector.")
    _materialise_shared_initializers(proto.graph)
    if simplify:
        proto = _simplify(proto)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"facescope export of {metadata['facescope_model']}: outputs {metadata['facescope_outputs']}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the export: {exc}") from exc
    onnx.save(proto, str(path))


def _strip_prefix(graph: object, prefix: str) -> None:
    """Rename ``detector.backbone.x`` tensors to ``backbone.x``, the model's own state-dict names
    (initializers, and the Identity outputs the exporter uses for de-duplicated initializers)."""

    def renamed(name: str) -> str:
        return name[len(prefix) :] if name.startswith(prefix) else name

    for init in graph.initializer:
        init.name = renamed(init.name)
    for info in graph.value_info:
        info.name = renamed(info.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed(name)
        for i, name in enumerate(node.output):
            node.output[i] = renamed(name)


def _materialise_shared_initializers(graph: object) -> None:
    """Replace ``Identity(initializer)`` nodes (the exporter's de-duplication of equal weights) by a
    named copy of the initializer, so every Conv reads its own parameters, as the ONNX importer
    (:mod:`facescope.models.onnx_import`) expects."""
    from onnx import numpy_helper

    by_name = {init.name: init for init in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    identities = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in by_name and n.output[0] not in graph_outputs]
    for node in identities:
        copy = numpy_helper.from_array(numpy_helper.to_array(by_name[node.input[0]]), name=node.output[0])
        graph.initializer.append(copy)
        graph.node.remove(node)


def _simplify(proto: object) -> object:
    try:
        import onnxsim
    except ImportError as exc:
        raise ExportError("--simplify needs onnx-simplifier, which is not installed: pip install onnxsim") from exc
    simplified, ok = onnxsim.simplify(proto)
    if not ok:
        raise ExportError("onnx-simplifier could not validate the simplified graph; export without --simplify")
    return simplified


def synthetic_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like BGR uint8 ``H x W x 3`` image: smooth background, skin-toned
    ellipses with dark eyes and mouths. Realistic activations without shipping a photo."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(30, 220, size=(max(height // 24, 2), max(width // 24, 2), 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    for _ in range(max(3, (height * width) // 40000)):
        radius = int(rng.uniform(0.03, 0.2) * min(height, width)) + 4
        cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        skin = (float(rng.uniform(60, 140)), float(rng.uniform(110, 170)), float(rng.uniform(160, 230)))
        cv2.ellipse(image, (cx, cy), (int(radius * 0.8), radius), 0, 0, 360, skin, -1)
        for dx in (-0.35, 0.35):
            cv2.circle(image, (int(cx + dx * radius), int(cy - 0.2 * radius)), max(radius // 8, 1), (40, 40, 40), -1)
        cv2.ellipse(image, (cx, int(cy + 0.45 * radius)), (max(radius // 3, 1), max(radius // 10, 1)), 0, 0, 360, (60, 50, 120), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def normalised_batch(images: Sequence[np.ndarray], detector: DenseFaceDetector) -> Tensor:
    """BGR uint8 images of one size -> the model's normalised ``Tensor[B, 3, H, W]`` (no resizing)."""
    from facescope.inference.preprocess import keep_original, to_tensor

    resize = ResizeSpec("original", size_divisor=detector.input_spec.size_divisor)
    return to_tensor([keep_original(image, resize) for image in images], detector.input_spec)


def _check_inputs(
    detector: DenseFaceDetector, input_hw: tuple[int, int], dynamic: bool, images: Sequence[np.ndarray] | None
) -> list[Tensor]:
    """Batch 1 at the export size; with dynamic axes also a batch of 2 at a second size."""
    height, width = input_hw
    divisor = detector.input_spec.size_divisor
    shapes = [(1, height, width)]
    if dynamic:
        second_h = max(divisor, (height * 3 // 4) // divisor * divisor)
        shapes.append((2, second_h if second_h != height else height + divisor, width))
    batches = []
    for index, (batch, h, w) in enumerate(shapes):
        if images:
            scenes = [cv2.resize(images[(index + i) % len(images)], (w, h)) for i in range(batch)]
        else:
            scenes = [synthetic_scene(h, w, seed=10 * index + i) for i in range(batch)]
        batches.append(normalised_batch(scenes, detector))
    return batches


def verify_export(
    detector: DenseFaceDetector, path: str | Path, inputs: Sequence[Tensor], tolerance: float = DEFAULT_TOLERANCE
) -> list[ParityCheck]:
    """Run ``path`` in onnxruntime and ``detector`` in eager PyTorch on each input; compare every output.

    Raises:
        ExportError: when an output differs by more than ``tolerance`` (or has another shape).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = output_names(detector)
    graph = DenseExportGraph(detector).eval()
    checks = []
    for batch in inputs:
        with torch.no_grad():
            expected = [t.numpy() for t in graph(batch)]
        produced = session.run(names, {INPUT_NAME: batch.numpy()})
        diffs = []
        for name, want, got in zip(names, expected, produced):
            if want.shape != got.shape:
                raise ExportError(f"output {name} has shape {list(got.shape)} in onnxruntime, {list(want.shape)} in PyTorch")
            diffs.append((float(np.abs(want - got).max(initial=0.0)), name))
        worst, worst_name = max(diffs)
        checks.append(ParityCheck(tuple(batch.shape), worst, worst_name))  # type: ignore[arg-type]
        if not worst <= tolerance:
            raise ExportError(
                f"onnxruntime differs from PyTorch by {worst:.3g} (> tolerance {tolerance:g}) in {worst_name} "
                f"for input {list(batch.shape)}; the file was not written"
            )
    return checks
