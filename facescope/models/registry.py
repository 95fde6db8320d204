"""The one registry of model builders.

Builders are plain functions registered with :func:`register_model`; pretrained weights are
declared next to them as :class:`~facescope.models.weights.WeightSpec` data.

Example:
    >>> from facescope.models import create_model, list_models
    >>> "scrfd_500m_kps" in list_models()
    True
    >>> model = create_model("scrfd_500m_kps")          # random init
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from facescope.errors import UnknownModelError, WeightsError, suggest
from facescope.models.base import DenseFaceDetector
from facescope.models.weights import WeightSpec, fetch_weights, load_weights_file

Builder = Callable[[], DenseFaceDetector]


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture.

    Attributes:
        name: registry name, e.g. ``"scrfd_2.5g_kps"``.
        builder: zero-argument function returning a randomly initialised model.
        family: detector family (``"scrfd"``, ``"retinaface"``, ...).
        summary: one line for ``facescope models``.
        weights: pretrained releases, the first being the default.
        paper_metrics: published WIDER FACE val AP of the architecture, when the paper gives one.
    """

    name: str
    builder: Builder
    family: str
    summary: str
    weights: tuple[WeightSpec, ...] = ()
    paper_metrics: Mapping[str, float] | None = None

    def weight_spec(self, tag: str | None = None) -> WeightSpec:
        """The default release, or the one called ``tag``."""
        if not self.weights:
            raise WeightsError(f"model '{self.name}' has no pretrained weights; pass a weights file")
        if tag is None:
            return self.weights[0]
        for spec in self.weights:
            if spec.tag == tag:
                return spec
        tags = [s.tag for s in self.weights]
        raise WeightsError(f"model '{self.name}' has no weights '{tag}'{suggest(tag, tags)}; available: {tags}")


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    family: str,
    summary: str,
    weights: tuple[WeightSpec, ...] = (),
    paper_metrics: Mapping[str, float] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name``; a duplicate name is an error."""

    def decorator(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = ModelEntry(name, builder, family, summary, tuple(weights), paper_metrics)
        return builder

    return decorator


def _ensure_builtin_models() -> None:
    # Importing the family modules runs their @register_model decorators.
    import facescope.models.retinaface  # noqa: F401
    import facescope.models.scrfd  # noqa: F401


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell ``pattern``, optionally only those with weights."""
    _ensure_builtin_models()
    return sorted(n for n, e in _MODELS.items() if fnmatch.fnmatch(n, pattern) and (e.weights or not pretrained))


def get_model_entry(name: str) -> ModelEntry:
    """Look ``name`` up, raising :class:`UnknownModelError` with a close-match suggestion."""
    _ensure_builtin_models()
    if name not in _MODELS:
        raise UnknownModelError(f"unknown model '{name}'{suggest(name, _MODELS)}; see `facescope models`")
    return _MODELS[name]


def create_model(
    name: str,
    weights: str | Path | None = None,
    *,
    sha256: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DenseFaceDetector:
    """Build a registered model, optionally with weights.

    Args:
        name: registry name.
        weights: None (random init), ``"pretrained"`` (the default release), a release tag, or a
            path to a ``.onnx`` / PyTorch weights file.
        sha256: expected hash of a weights *path* (releases always carry their own).
        device: where to put the model.
        progress: show a download progress bar.

    Returns:
        The model in eval mode.
    """
    entry = get_model_entry(name)
    model = entry.builder()
    if weights is not None:
        path = resolve_weights(entry, weights, progress)
        load_weights_file(model, path, name, sha256=sha256)
    return model.to(device).eval()


def resolve_weights(entry: ModelEntry, weights: str | Path, progress: bool = True) -> Path:
    """Map ``"pretrained"``, a release tag or a path to a local file."""
    text = str(weights)
    if text == "pretrained":
        return fetch_weights(entry.weight_spec(), progress)
    if any(spec.tag == text for spec in entry.weights):
        return fetch_weights(entry.weight_spec(text), progress)
    path = Path(weights).expanduser()
    if not path.exists():
        tags = [s.tag for s in entry.weights]
        raise WeightsError(f"weights '{weights}' is neither a file nor a release of '{entry.name}' (releases: {tags})")
    return path


def build_on_meta(name: str) -> DenseFaceDetector:
    """Build the architecture without allocating weights (for metadata, decoding and key lists)."""
    with torch.device("meta"):
        return get_model_entry(name).builder()


def find_architectures_for(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """Names of registered architectures whose state dict has exactly these keys and shapes."""
    names = []
    for name in list_models():
        expected = build_on_meta(name).state_dict()
        same_keys = {k for k in expected if not k.endswith("num_batches_tracked")} == {
            k for k in shapes if not k.endswith("num_batches_tracked")
        }
        if same_keys and all(tuple(expected[k].shape) == shapes[k] for k in shapes if k in expected):
            names.append(name)
    return names
