"""Static int8 quantisation of a detector's ONNX file for CPU inference (onnxruntime QDQ).

:func:`quantize_onnx` turns a float32 ONNX file of a registered model (an official file or a
``facescope export``) into a QDQ file: weights int8 per output channel, activations uint8 with
ranges calibrated on real images pre-processed exactly as the detector does at the deployment size
(the u8s8 pair that VNNI CPUs run fastest). Chosen layers stay in float32:

* ``stem``: the first convolution (3 input channels: int8 gains nothing there and onnxruntime's
  int8 kernel for it is slower than the float one);
* ``depthwise``: grouped convolutions (onnxruntime's int8 depthwise kernels are slower than its
  float ones; MobileNet backbones such as SCRFD-500M's are mostly depthwise + pointwise pairs);
* ``heads``: the convolutions whose outputs reach the graph outputs (scores, boxes, landmarks) only
  through non-convolution nodes (the usual remedy when int8 outputs lose small faces);
* any node name of the graph.

What runs is onnxruntime's choice: when it loads the file, onnxruntime (1.32 measured) quantises, per
tensor, the float weights of a kept convolution whose input and output are both quantised (its
``WeightBiasQuantization`` transformer turns ``DequantizeLinear -> Conv -> QuantizeLinear`` into one
``QLinearConv``). So in SCRFD-500M-kps only the stem and the depthwise convolution right after it
(whose input is float) run in float32; disabling that transformer ran 11 % slower here (more
``DequantizeLinear`` and layout transposes). The AP and speed a report or benchmark measures are
those of what onnxruntime runs.

Known pitfalls (``docs`` of the command, README):

* Naive int8 SCRFD files elsewhere lost every box (ncnn-android-scrfd #13): quantised sigmoid
  scores collapse when the activation range is calibrated on images without faces or at another
  size. Calibrate on real photos with faces at the size you deploy, and compare AP before and after
  (``facescope quantize --ap-images/--ap-gt`` does).
* Min/max calibration lets a few outlier activations stretch the ranges; the default
  ``percentile`` (99.999 %) calibration keeps more resolution. Histogram calibrations need
  equally sized inputs, so calibration images are letterboxed onto the square deployment canvas.
* int8 is not faster everywhere (onnxruntime issues #17389, #26143): without VNNI, or for
  depthwise-heavy networks, QDQ can be slower than float32. Time it on the target CPU.

The result records what it is in its metadata (``facescope_quantization``: format, types, method,
calibration images and size, the layers kept in float) and the architecture (``facescope_model``),
so :class:`~facescope.inference.backends.OnnxRuntimeBackend` and every command accept it like any
other ONNX file of that model.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facescope.errors import FacescopeError
from facescope.models.weights import file_sha256
from facescope.inference.backends import QUANTIZATION_KEY

KEEP_FLOAT_GROUPS = ("stem", "depthwise", "heads")
DEFAULT_KEEP_FLOAT = ("stem", "depthwise")
CALIBRATION_METHODS = ("percentile", "minmax", "entropy")
QUANT_OPSET = 13  # per-channel QuantizeLinear / DequantizeLinear (axis) need opset 13
METADATA_KEY = QUANTIZATION_KEY


class QuantizeError(FacescopeError):
    """A quantisation could not be produced as asked."""


@dataclass
class QuantizeResult:
    """What :func:`quantize_onnx` wrote.

    Attributes:
        path: the int8 ``.onnx`` file.
        model_name: the registered architecture.
        calibration_images: how many images calibrated the activation ranges.
        kept_float: names of the nodes left in float32.
        metadata: the ``facescope_quantization`` record written into the file (parsed).
    """

    path: Path
    model_name: str
    calibration_images: int
    kept_float: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def calibration_images(directory: str | Path, max_images: int) -> list[Path]:
    """Up to ``max_images`` image files below ``directory`` (sorted); each is checked to decode,
    so a bad file is named before minutes of calibration."""
    from facescope.inference.image_io import list_images, read_image

    folder = Path(directory)
    if not folder.is_dir():
        raise QuantizeError(f"--calibration {folder}: not a folder of images")
    paths = list_images(folder)[:max_images]
    if not paths:
        raise QuantizeError(f"--calibration {folder}: no images (.jpg, .png, ...) found")
    for path in paths:
        read_image(path)  # raises ImageReadError naming the file
    return paths


class _Calibration:
    """onnxruntime ``CalibrationDataReader``: each image resized as the detector resizes it at the
    deployment size and normalised, then placed on the square canvas of that size (padding at the
    model's mean, normalised 0) so that every calibration input has one shape."""

    def __init__(self, input_name: str, paths: Sequence[Path], input_spec: Any, resize: Any) -> None:
        self.input_name = input_name
        self.paths = list(paths)
        self.input_spec = input_spec
        self.resize = resize
        self._iterator: Iterator[dict[str, np.ndarray]] | None = None

    def _inputs(self) -> Iterator[dict[str, np.ndarray]]:
        from facescope.inference.image_io import read_image
        from facescope.inference.preprocess import ResizedImage, _round_up, resize_image, to_blob

        divisor = self.input_spec.size_divisor
        # the square long:N canvas, or the letterbox canvas, rounded up to the size divisor
        canvas = (_round_up(self.resize.size[1], divisor), _round_up(self.resize.size[0], divisor))
        for path in self.paths:
            item = resize_image(read_image(path), self.resize, self.input_spec)
            item = ResizedImage(item.image, canvas, item.scale_xy, item.original_hw)
            yield {self.input_name: to_blob([item], self.input_spec, float(np.mean(self.input_spec.mean)))}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iterator is None:
            self._iterator = self._inputs()
        return next(self._iterator, None)

    def rewind(self) -> None:
        self._iterator = None


def _conv_nodes(proto: Any) -> list[Any]:
    return [n for n in proto.graph.node if n.op_type == "Conv"]


def float_nodes(proto: Any, keep_float: Sequence[str]) -> list[str]:
    """Node names for the ``keep_float`` entries (groups of :data:`KEEP_FLOAT_GROUPS` or node names)."""
    from onnx import helper

    names = {n.name for n in proto.graph.node}
    producers = {out: n for n in proto.graph.node for out in n.output}
    chosen: list[str] = []
    for entry in keep_float:
        if entry == "stem":
            graph_input = proto.graph.input[0].name
            chosen += [n.name for n in _conv_nodes(proto) if n.input[0] == graph_input]
        elif entry == "depthwise":
            chosen += [
                n.name for n in _conv_nodes(proto) if any(a.name == "group" and helper.get_attribute_value(a) > 1 for a in n.attribute)
            ]
        elif entry == "heads":
            for output in proto.graph.output:
                node = producers.get(output.name)
                while node is not None and node.op_type != "Conv":  # through Sigmoid / Reshape / Transpose / Split / Mul
                    node = producers.get(node.input[0])
                if node is not None:
                    chosen.append(node.name)
        elif entry in names:
            chosen.append(entry)
        else:
            raise QuantizeError(f"--keep-float {entry!r} is neither a group ({', '.join(KEEP_FLOAT_GROUPS)}) nor a node of the graph")
    return sorted(set(chosen))


def _prepared_graph(weights: Path, work: Path) -> Path:
    """The float graph to quantise: sibling convolutions merged (as the backend runs it), opset
    raised to 13 for per-channel scales, then onnxruntime's shape inference and pre-optimisation."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import quant_pre_process

    from facescope.inference.onnx_graph import merge_sibling_convs, opset_of

    proto = onnx.load(str(weights))
    merge_sibling_convs(proto)
    if opset_of(proto) < QUANT_OPSET:
        proto = version_converter.convert_version(proto, QUANT_OPSET)
    for output in proto.graph.output:  # official files annotate 640x640 output shapes: drop them
        output.type.tensor_type.ClearField("shape")
    del proto.graph.value_info[:]
    merged = work / "merged.onnx"
    onnx.save(proto, str(merged))
    prepared = work / "prepared.onnx"
    quant_pre_process(str(merged), str(prepared), skip_symbolic_shape=True)
    return prepared


def quantize_onnx(
    model: str,
    weights: str | Path,
    calibration: str | Path,
    out: str | Path,
    *,
    input_size: int | tuple[int, int] | str | None = None,
    keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT,
    method: str = "percentile",
    percentile: float = 99.999,
    max_images: int = 100,
) -> QuantizeResult:
    """Quantise ``weights`` (a float ONNX file of ``model``) to a static int8 QDQ file at ``out``.

    Args:
        model: registered architecture of the file (checked: a file of another model is refused).
        weights: the float32 ``.onnx`` file.
        calibration: folder of real images (searched recursively; the first ``max_images``).
        out: the ``.onnx`` file to write (atomically).
        input_size: the deployment size the images are calibrated at (``640``, ``(w, h)``,
            ``"long:640"``); None = the model's ``default`` preset size.
        keep_float: groups (``stem``, ``depthwise``, ``heads``) or node names left in float32.
        method: ``percentile`` (default), ``minmax`` or ``entropy`` activation calibration.
        percentile: the percentile of ``method="percentile"``.
        max_images: calibration images used at most.

    Returns:
        :class:`QuantizeResult`.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from facescope.fileio import atomic_path
    from facescope.inference.backends import OnnxRuntimeBackend
    from facescope.inference.onnx_graph import is_quantized
    from facescope.models.registry import get_model_entry

    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; use one of {', '.join(CALIBRATION_METHODS)}")
    entry = get_model_entry(model)
    weights, out = Path(weights), Path(out)
    OnnxRuntimeBackend(weights, entry)  # refuses a file that is not this architecture, before any work
    source = onnx.load(str(weights), load_external_data=False)
    if is_quantized(source):
        raise QuantizeError(f"{weights} is already quantised")
    resize = entry.presets["default"].with_overrides(input_size=input_size).resize
    if resize.mode == "original":
        raise QuantizeError("calibration needs a deployment size such as 640 or long:640, not 'original'")
    paths = calibration_images(calibration, max_images)
    with tempfile.TemporaryDirectory(prefix="facescope-quantize-") as tmp:
        prepared = _prepared_graph(weights, Path(tmp))
        prepared_proto = onnx.load(str(prepared))
        kept = float_nodes(prepared_proto, keep_float)
        reader = _Calibration(prepared_proto.graph.input[0].name, paths, entry.input_spec, resize)
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
            calibrate_method={"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
                              "entropy": CalibrationMethod.Entropy}[method],
            extra_options={"CalibPercentile": float(percentile)},
        )  # fmt: skip
        record = {
            "format": "QDQ",
            "weights": "int8, per output channel",
            "activations": "uint8",
            "calibration": {"method": method, **({"percentile": percentile} if method == "percentile" else {}),
                            "images": len(paths), "input_size": resize.size_text()},
            "kept_float": kept,
            "source": weights.name,
            "source_sha256": file_sha256(weights),
        }  # fmt: skip
        result_proto = onnx.load(str(quantized))
        metadata = {p.key: p.value for p in source.metadata_props}
        metadata.update({"facescope_model": entry.name, METADATA_KEY: json.dumps(record)})
        del result_proto.metadata_props[:]
        for key, value in metadata.items():
            result_proto.metadata_props.add(key=key, value=value)
        with atomic_path(out, ".onnx.tmp") as target:
            onnx.save(result_proto, str(target))
            OnnxRuntimeBackend(target, entry)  # the file runs and fits, or nothing is written
    return QuantizeResult(out, entry.name, len(paths), kept, record)


def quantization_record(path: str | Path) -> dict[str, Any] | None:
    """The ``facescope_quantization`` metadata of an ONNX file, or None for a float file (needs
    only onnxruntime)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return json.loads(text) if text else None
