"""Declarative settings that travel with a model or its weights: input normalisation, resizing
policy, post-processing thresholds, named inference presets and the head layout. Torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    from facescope.models.tta_specs import TTASpec

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"  # weights shipped inside the package
#: How a head's logits become face scores (:func:`facescope.ops.scores.scores_from_logits`).
ScoreActivation = Literal["sigmoid", "softmax"]


@dataclass(frozen=True)
class InputSpec:
    """How pixels are turned into the network input: ``(pixel - mean) / std`` in ``color`` order."""

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    color: Literal["rgb", "bgr"] = "rgb"
    size_divisor: int = 32  # network input sides must be multiples of this


@dataclass(frozen=True)
class ResizeSpec:
    """How an image is brought to the network input size.

    * ``"letterbox"``: scale to fit inside ``size = (width, height)`` keeping the aspect ratio,
      paste at the top-left of a canvas filled with ``pad_value`` (pixel value before normalisation).
      ``rounding="floor"`` and ``scale_mode="single"`` reproduce insightface (``int()`` sizes, one
      scale ``new_h / h`` for both axes); ``"round"`` + ``"per_axis"`` reproduce mmdet's keep-ratio
      ``Resize`` (``int(x * s + 0.5)``, separate x and y factors).
    * ``"original"``: keep the original size and pad bottom/right up to a multiple of
      ``size_divisor`` (1 = no padding).
    * ``"long"``: scale so that the longer side becomes ``size[0]`` (``size == (N, N)``), keep the
      aspect ratio (sides ``int(side * N / longer + 0.5)``, separate x and y factors), and pad
      bottom/right only up to the model's size divisor: a 4:3 photo at ``long:640`` runs at
      640x480, not on a 640x640 canvas (``input_size="long:640"``). Needs a graph that takes
      dynamic sizes.
    """

    mode: Literal["letterbox", "original", "long"] = "letterbox"
    size: tuple[int, int] = (640, 640)
    rounding: Literal["floor", "round"] = "floor"
    scale_mode: Literal["single", "per_axis"] = "single"
    pad_value: float = 0.0
    size_divisor: int = 32

    def size_text(self) -> str:
        """``"long:640"``, ``"640x480"`` (letterbox width x height) or ``"original"``: the input-size spelling."""
        if self.mode == "long":
            return f"{LONG_PREFIX}{self.size[0]}"
        return f"{self.size[0]}x{self.size[1]}" if self.mode == "letterbox" else self.mode


@dataclass(frozen=True)
class PostprocessSettings:
    """Score filtering and NMS.

    Args:
        score_thresh: keep predictions with ``score >= score_thresh`` (``>`` if ``strict_score``).
        nms_thresh: IoU above which a lower-scoring box is suppressed.
        nms_pixel_offset: 1.0 = "+1" area convention of the official numpy NMS; 0.0 = continuous.
        pre_nms_top_k: keep only this many highest scores before NMS (None = all).
        max_detections: keep only this many after NMS (None = all).
    """

    score_thresh: float = 0.5
    nms_thresh: float = 0.4
    nms_pixel_offset: float = 1.0
    strict_score: bool = False
    pre_nms_top_k: int | None = None
    max_detections: int | None = None


@dataclass(frozen=True)
class InferencePreset:
    """A named, complete inference recipe (resize + post-processing + test-time augmentation).

    ``tta`` is the test-time augmentation protocol the recipe runs: a
    :class:`~facescope.models.tta_specs.TTASpec` (the catalogue's presets hold the published ones
    themselves), the name of one in :data:`~facescope.models.registry.TTA_PROTOCOLS` (resolved when a
    Detector is built), or None for the single pass (which the Detector runs as the protocol of one
    pass, :func:`~facescope.models.tta_specs.single_pass_protocol`). The published SCRFD and
    Pytorch_Retinaface results are single-pass, so their presets leave it None.
    """

    description: str
    resize: ResizeSpec = field(default_factory=ResizeSpec)
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)
    tta: TTASpec | str | None = None

    def with_overrides(
        self,
        score_thresh: float | None = None,
        nms_thresh: float | None = None,
        input_size: int | tuple[int, int] | str | None = None,
    ) -> InferencePreset:
        """Copy with user overrides; ``input_size`` is an int (square), ``(w, h)``, ``"original"`` or
        ``"long:N"`` (longer side to ``N``, aspect kept)."""
        post = self.postprocess
        if score_thresh is not None:
            post = replace(post, score_thresh=float(score_thresh))
        if nms_thresh is not None:
            post = replace(post, nms_thresh=float(nms_thresh))
        resize = self.resize
        if input_size is not None:
            resize = _resize_for(resize, input_size)
        return replace(self, resize=resize, postprocess=post)


LONG_PREFIX = "long:"


def parse_long_side(text: str) -> int | None:
    """``"long:640"`` -> 640; None for any other text (``"long:x"`` and ``"long:0"`` are errors)."""
    cleaned = text.strip().lower()
    if not cleaned.startswith(LONG_PREFIX):
        return None
    digits = cleaned[len(LONG_PREFIX) :]
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"'long:N' needs a whole number N >= 1, got {text!r}")
    return int(digits)


def _resize_for(resize: ResizeSpec, input_size: int | tuple[int, int] | str) -> ResizeSpec:
    if isinstance(input_size, str):
        long_side = parse_long_side(input_size)
        if long_side is not None:
            return replace(resize, mode="long", size=(long_side, long_side))
        if input_size != "original":
            raise ValueError(f"input_size must be an int, (width, height), 'original' or 'long:N', got {input_size!r}")
        return replace(resize, mode="original")
    size = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"input_size must be positive (width, height), got {input_size!r}")
    return replace(resize, mode="letterbox", size=size)


@dataclass(frozen=True)
class HeadLayout:
    """What decoding a dense head's outputs needs, declared without torch.

    The torch model builds its anchor generator and coder from this declaration (one source of
    truth), and the torch-free onnxruntime path decodes with it directly.

    Attributes:
        strides: stride of every pyramid level, ascending.
        anchors: per level, the anchors of one location as ``(width, height)`` pairs
            (:func:`~facescope.ops.anchors.anchor_shape` turns a scale and aspect ratio into one).
        center_offset: anchor centres at ``(j + offset) * stride``.
        coder: the box/landmark coder (a :class:`~facescope.ops.coders.BoxCoder`).
        has_landmarks: the head predicts 5 landmarks.
        score_activation: ``"sigmoid"`` (1 logit per prior) or ``"softmax"`` (background, face).
        logit_scale: the logits are multiplied by it before the activation: the scale ``s`` of a head
            trained with a large-margin cosine loss (its outputs are cosines; a criterion whose
            classification loss scores otherwise is refused), 1 for plain logits.
    """

    strides: tuple[int, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    center_offset: float
    coder: Any
    has_landmarks: bool
    score_activation: ScoreActivation = "sigmoid"
    logit_scale: float = 1.0

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_logits(self) -> int:
        """Classification channels of the torch head per prior."""
        return 1 if self.score_activation == "sigmoid" else 2

    def anchor_generator(self) -> Any:
        """A new :class:`~facescope.ops.anchors.AnchorGenerator` for this layout."""
        from facescope.ops.anchors import AnchorGenerator

        return AnchorGenerator(self.strides, self.anchors, self.center_offset)

    def rows_per_level(self, input_hw: tuple[int, int]) -> tuple[int, ...]:
        """Output rows of every level for an input of ``input_hw`` (the anchor generator's ceil-divided grid)."""
        return self.anchor_generator().num_priors_per_level(input_hw)


def square_anchors(sides_per_level: tuple[tuple[float, ...], ...]) -> tuple[tuple[tuple[float, float], ...], ...]:
    """``((16, 32), ...)`` -> ``(((16, 16), (32, 32)), ...)``: square anchors as (width, height) pairs."""
    return tuple(tuple((float(s), float(s)) for s in level) for level in sides_per_level)


@dataclass(frozen=True)
class WeightSpec:
    """One released set of weights for one registered architecture.

    Attributes:
        tag: short name, unique per architecture (``"insightface"``); ``arch.tag`` names the entry.
        url: the official release (a file, or an archive holding ``archive_member``).
        sha256: hash of the weights file itself (the archive member when there is one).
        filename: name of the cached file.
        license: licence of the weights (not of facescope).
        format: ``"onnx"`` (imported into the PyTorch model) or ``"torch"`` (a state dict / checkpoint).
        archive_member: path inside a zip archive at ``url``.
        mirrors: other URLs serving the identical file (checked against the same sha256), tried first.
        source: page describing the release.
        input_size: ``(width, height)`` the weights were evaluated at.
        preset: inference preset the metrics were measured with.
        metrics: e.g. ``{"widerface_val": {"easy": 93.80, "medium": 92.02, "hard": 77.13}}`` as published.
        size_bytes: the file's published size, when known: a file of another size is refused before
            it is hashed (a truncated download says so in those words).
        embedded: the file ships inside the package (``facescope/models/embedded/<filename>``,
            with its source and licence beside it): nothing is downloaded, ``url`` is unused.
        permissive: the licence allows commercial use; the ``detect`` summary names the licence of
            weights that are not permissive.
    """

    tag: str
    url: str
    sha256: str
    filename: str
    license: str
    format: Literal["onnx", "torch"]
    archive_member: str | None = None
    mirrors: tuple[str, ...] = ()
    source: str = ""
    input_size: tuple[int, int] | None = (640, 640)
    preset: str = "official"
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    size_bytes: int | None = None
    embedded: bool = False
    permissive: bool = True

    def where(self) -> str:
        """Where the file comes from, for listings: the URL, or the package folder when embedded."""
        if self.embedded:
            return f"embedded in the package ({EMBEDDED_DIR / self.filename})"
        return self.url + (f" :: {self.archive_member}" if self.archive_member else "")
