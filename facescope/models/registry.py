"""The one registry of models: a torch-free catalogue of entries, each naming a lazily imported builder.

An entry (:class:`ModelEntry`) carries everything inference needs without building the network:
family, input spec, inference presets, head layout (strides, anchors, coder, landmarks),
pretrained weights and paper metrics; its ``builder`` is a ``"module:function"`` string imported
(with torch) only by :func:`create_model`.

How families register themselves: every module of the package :mod:`facescope.models.catalog`
is a torch-free declaration of one family that calls :func:`register_model` for each of its
architectures; the registry finds them with :func:`pkgutil.iter_modules` on first use, so adding a
family is adding one file there (no import list to edit here). A package scan was chosen over
``importlib.metadata`` entry points because it needs no re-install after adding a family (editable
checkouts see it at once) and costs only the import of a few small modules, while scanning the
installed distributions' metadata costs tens of milliseconds on every cold start.

Example:
    >>> from facescope.models import create_model, list_models
    >>> "scrfd_500m_kps" in list_models()
    True
    >>> model = create_model("scrfd_500m_kps")          # random init (imports torch)
    >>> model = create_model("retinaface_paper_r50", deformable=False)
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facescope.errors import FacescopeError, UnknownModelError, UnknownTTAProtocolError, WeightsError, suggest
from facescope.named_registry import NamedRegistry
from facescope.models.options import builder_options, check_agreement, coerce_option, to_saved
from facescope.models.spec import HeadLayout, InferencePreset, InputSpec, WeightSpec
from facescope.models.tta_specs import NO_TTA, USER_PROTOCOLS, TTASpec
from facescope.models.weights import cached_path, file_sha256

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from facescope.models.base import DenseFaceDetector

CATALOG_PACKAGE = "facescope.models.catalog"
# The default of `facescope detect` and Detector(): its default release is embedded in the package
# (MIT, torch-free, offline); the SCRFD releases are more accurate and one `--model` away.
DEFAULT_MODEL = "retinaface_mnet025"


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture.

    Attributes:
        name: registry name, e.g. ``"scrfd_2.5g_kps"``.
        builder: ``"module:function"`` returning a randomly initialised model; its keyword
            arguments are the overrides :func:`create_model` accepts.
        family: detector family (``"scrfd"``, ``"retinaface"``, ...).
        summary: one line for ``facescope models``.
        input_spec: pixel normalisation and size divisor of the network input.
        head: :class:`~facescope.models.spec.HeadLayout` (what decoding needs).
        bytes_per_pixel: peak memory of one eager CPU forward pass per network input pixel, declared
            by the catalogue from a measurement (``benchmarks/memory_per_pixel.py``); the memory
            budget of :mod:`facescope.inference.validate` refuses inputs with it before any work.
        presets: named inference recipes; ``"default"`` is what :class:`~facescope.Detector` uses.
        weights: pretrained releases, the first being the default; each names the preset its
            published numbers used (``WeightSpec.preset``).
        paper_metrics: published WIDER FACE val AP of the architecture, when the paper gives one.
        criterion: the name of its default training criterion, registered in
            :mod:`facescope.losses.criteria` (a recipe's ``loss.criterion`` may name another); None for
            an architecture that is not trained here.
    """

    name: str
    builder: str
    family: str
    summary: str
    input_spec: InputSpec
    head: HeadLayout
    bytes_per_pixel: int
    presets: Mapping[str, InferencePreset] = field(default_factory=dict)
    weights: tuple[WeightSpec, ...] = ()
    paper_metrics: Mapping[str, float] | None = None
    criterion: str | None = None

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

    def preset(self, name: str) -> InferencePreset:
        """The preset called ``name``; an unknown name is an error listing the family's presets."""
        if name not in self.presets:
            raise FacescopeError(f"unknown preset '{name}'{suggest(name, self.presets)}; {self.name} has {sorted(self.presets)}")
        return self.presets[name]

    def protocol_preset(self, weights_tag: str | None = None) -> str:
        """The preset the published numbers of a release were measured with (evaluation uses it).

        ``weights_tag`` None means the default release; a model without releases uses its
        ``"widerface"`` preset.
        """
        if not self.weights:
            return "widerface"
        spec = self.weight_spec(weights_tag)
        return spec.preset

    def builder_function(self) -> Callable[..., DenseFaceDetector]:
        """Import the builder (this imports torch and the model code)."""
        module_name, _, attribute = self.builder.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    def options(self) -> dict[str, tuple[Any, Any]]:
        """The builder's options: ``name -> (type hint, default)`` (imports the builder)."""
        return builder_options(self.builder_function())

    def accepted_overrides(self) -> list[str]:
        """Keyword arguments the builder accepts (what ``create_model(name, **overrides)`` may pass)."""
        return list(self.options())

    def build(self, **overrides: Any) -> DenseFaceDetector:
        """A randomly initialised model; unknown ``overrides`` are an error naming the accepted ones.

        See :meth:`build_from`."""
        return self.build_from(overrides)

    def build_from(
        self, given: Mapping[str, Any], saved: Mapping[str, Any] | None = None, source: str = ""
    ) -> DenseFaceDetector:
        """A randomly initialised model with the ``saved`` options of a file (``source``), and ``given`` ones.

        Values are read with the builder's type hints (:func:`~facescope.models.options.coerce_option`:
        strings from the command line, file-valued options from a path). A ``given`` option whose value
        differs from the ``saved`` one is refused naming both. The model records its registry name
        (``model.registry_name``), so that a Detector given the model object finds this entry's presets,
        and every option it was built with, defaults included, in saved form (``model.model_args``), which
        checkpoints and ONNX exports carry.
        """
        options = self.options()
        unknown = sorted((set(given) | set(saved or {})) - set(options))
        if unknown:
            origin = f" (saved in {source})" if source and set(unknown) <= set(saved or {}) - set(given) else ""
            raise FacescopeError(
                f"model '{self.name}' does not accept {', '.join(repr(k) for k in unknown)}{origin}"
                f"{suggest(unknown[0], options)}; accepted overrides: {list(options) or 'none'}"
            )
        given_values = {k: coerce_option(k, options[k][0], v) for k, v in given.items()}
        values = {k: coerce_option(k, options[k][0], v) for k, v in (saved or {}).items()}
        if saved is not None:
            check_agreement(to_saved(values), to_saved(given_values), source or "the weights file")
        values.update(given_values)
        model = self.builder_function()(**values)
        model.registry_name = self.name
        defaults = {k: default for k, (_, default) in options.items() if default is not inspect.Parameter.empty}
        model.model_args = to_saved({**defaults, **values})
        return model


def _load_catalog() -> None:
    """Import every family declaration of the catalogue package (each registers its entries)."""
    package = importlib.import_module(CATALOG_PACKAGE)
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{CATALOG_PACKAGE}.{module.name}")


_MODELS: NamedRegistry[ModelEntry] = NamedRegistry(
    "model", error=UnknownModelError, hint="see `facescope models`", loader=_load_catalog
)


def register_model(
    name: str,
    *,
    builder: str,
    family: str,
    summary: str,
    input_spec: InputSpec,
    head: HeadLayout,
    presets: Mapping[str, InferencePreset],
    bytes_per_pixel: int | None = None,
    weights: tuple[WeightSpec, ...] = (),
    paper_metrics: Mapping[str, float] | None = None,
    criterion: str | None = None,
) -> ModelEntry:
    """Add an entry (called by the catalogue modules); a duplicate name is an error, and so is an
    entry without its measured ``bytes_per_pixel`` (see :class:`ModelEntry`)."""
    if name in _MODELS:
        raise ValueError(f"model '{name}' is already registered")
    if ":" not in builder:
        raise ValueError(f"builder of '{name}' must be 'module:function', got {builder!r}")
    for spec in weights:
        if spec.preset not in presets:
            raise ValueError(f"weights '{name}.{spec.tag}' name preset '{spec.preset}', which '{name}' does not have")
    if bytes_per_pixel is None or bytes_per_pixel < 1:
        raise ValueError(f"model '{name}' must declare its measured bytes_per_pixel (>= 1), got {bytes_per_pixel}")
    entry = ModelEntry(
        name, builder, family, summary, input_spec, head, int(bytes_per_pixel), dict(presets), tuple(weights), paper_metrics,
        criterion=criterion,
    )
    return _MODELS.add(name, entry)


#: Every registered TTA protocol by name: the user-level ``flip`` and ``multiscale`` and the published
#: ones the catalogue declares next to their family (loaded with the catalogue on first use).
TTA_PROTOCOLS: NamedRegistry[TTASpec] = NamedRegistry.of(
    "TTA protocol",
    ((spec.name, spec) for spec in USER_PROTOCOLS),
    error=UnknownTTAProtocolError,
    hint=lambda names: f"known: {', '.join(names)}",
    loader=_load_catalog,
)


def register_tta_protocol(spec: TTASpec) -> TTASpec:
    """Add a test-time augmentation protocol (called by the catalogue modules, which declare the
    published ones next to their family); a duplicate name, or the reserved ``"none"``, is an error."""
    if spec.name == NO_TTA:
        raise ValueError(f"TTA protocol '{NO_TTA}' is reserved for the single pass")
    return TTA_PROTOCOLS.add(spec.name, spec)


def get_tta_protocol(name: str) -> TTASpec:
    """The protocol registered as ``name``; an unknown name raises with the closest known name."""
    return TTA_PROTOCOLS.get(name)


def resolve_tta(tta: TTASpec | str | None) -> TTASpec | None:
    """A protocol from a :class:`TTASpec`, a registered name, or None / ``"none"`` (single pass).

    Raises:
        UnknownTTAProtocolError: an unknown name (the message suggests the closest known one).
    """
    if tta is None or isinstance(tta, TTASpec):
        return tta
    if isinstance(tta, str):
        return None if tta == NO_TTA else get_tta_protocol(tta)
    raise FacescopeError(f"tta must be a protocol name, a TTASpec or None, got {type(tta).__name__}")


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell ``pattern``, optionally only those with weights."""
    return [n for n in _MODELS.names() if fnmatch.fnmatch(n, pattern) and (_MODELS[n].weights or not pretrained)]


def get_model_entry(name: str) -> ModelEntry:
    """Look ``name`` up, raising :class:`UnknownModelError` with a close-match suggestion."""
    return _MODELS.get(name)


def entries() -> list[ModelEntry]:
    """Every registered entry, sorted by name."""
    return [get_model_entry(name) for name in list_models()]


def family_presets(family: str) -> Mapping[str, InferencePreset]:
    """The presets of a family (those of its first registered entry); for models built outside the
    registry, which carry no ``registry_name``."""
    for entry in entries():
        if entry.family == family:
            return entry.presets
    raise UnknownModelError(f"no registered model of family '{family}'")


def create_model(
    name: str,
    weights: str | Path | None = None,
    *,
    sha256: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **overrides: Any,
) -> DenseFaceDetector:
    """Build a registered model, optionally with weights.

    Args:
        name: registry name.
        weights: None (random init), ``"pretrained"`` (the default release), a release tag, or a
            path to a ``.onnx`` / PyTorch weights file.
        sha256: expected hash of a weights *path* (releases always carry their own).
        device: where to put the model.
        progress: show a download progress bar.
        **overrides: builder options, e.g. ``deformable=False`` for ``retinaface_paper_r50`` (strings
            are read with the builder's type hints; a file-valued option takes a path); an unknown one
            is an error naming those the builder accepts. A weights file that records the options it
            was trained with (facescope checkpoints and exports) is built with those: options need not
            be repeated, and one given with another value is refused naming both.

    Returns:
        The model in eval mode.
    """
    from facescope.models.weights import WeightsFile

    entry = get_model_entry(name)
    if weights is None:
        return entry.build(**overrides).to(device).eval()
    loaded = WeightsFile.read(resolve_weights(entry, weights, progress), sha256)
    model = entry.build_from(overrides, loaded.model_args, str(loaded.path))
    loaded.load_into(model, name, fits=find_architectures_for)
    return model.to(device).eval()


def resolve_weights(entry: ModelEntry, weights: str | Path, progress: bool = True) -> Path:
    """Map ``"pretrained"``, a release tag or a path to a local file."""
    from facescope.models.weights import fetch_weights

    text = str(weights)
    if text == "pretrained":
        return fetch_weights(entry.weight_spec(), progress)
    if any(spec.tag == text for spec in entry.weights):
        return fetch_weights(entry.weight_spec(text), progress)
    path = Path(weights).expanduser()
    if not path.exists():
        tags = [s.tag for s in entry.weights]
        raise WeightsError(f"weights '{weights}' is neither a file nor a release of '{entry.name}' (releases: {tags})")
    from facescope.models.weights import check_weights_file

    check_weights_file(path)
    return path


def release_format(entry: ModelEntry, weights: str | Path | None) -> str | None:
    """``"onnx"`` / ``"torch"`` when ``weights`` names a release of ``entry`` (None = default), else None."""
    if weights is None or str(weights) == "pretrained":
        return entry.weights[0].format if entry.weights else None
    for spec in entry.weights:
        if spec.tag == str(weights):
            return spec.format
    return None


def find_release(sha256: str) -> tuple[ModelEntry, WeightSpec] | None:
    """The registered release whose file hashes to ``sha256``, if any."""
    for entry in entries():
        for spec in entry.weights:
            if spec.sha256.lower() == sha256.lower():
                return entry, spec
    return None


def release_of_file(path: Path) -> tuple[ModelEntry, WeightSpec] | None:
    """The registered release stored at ``path`` (its cache or package location, else its sha256), if any."""
    resolved = path.resolve()
    for entry in entries():
        for spec in entry.weights:
            if cached_path(spec).resolve() == resolved:
                return entry, spec

    return find_release(file_sha256(path))


def build_on_meta(name: str) -> DenseFaceDetector:
    """Build the architecture without allocating weights (for parameter counts and key lists)."""
    import torch

    with torch.device("meta"):
        return get_model_entry(name).build()


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
