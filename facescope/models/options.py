"""Model options (the keyword arguments of a registered builder) as data that travels with the weights.

A builder's keyword parameters are its options (``create_model(name, **options)``). Values arrive as
Python values (the Python API, a recipe's ``model_args:`` mapping) or as strings (``--model-arg
KEY=VALUE``, ``model_args.KEY=VALUE``); :func:`coerce_option` reads them with the builder's type
hints. The full set a model was built with, defaults included, is recorded on the model
(``model.model_args``, see :meth:`~facescope.models.registry.ModelEntry.build`) in a JSON-ready *saved
form* (:func:`to_saved`) that goes into every checkpoint (``"model_args"``) and ONNX export
(``facescope_model_args`` metadata), and is restored when that file is loaded.

**File-valued options.** A builder declares that an option is a file by annotating the parameter with
:class:`ModelFile` (e.g. ``mesh_topology: ModelFile | None = None``). The caller passes a path; the
registry reads the file and the builder receives its bytes. The saved form holds the file's name,
sha256 and content (base64), never the path, so a checkpoint rebuilds its model on any machine.

**Agreement.** A file's saved options are used as they are; an option also given by the caller must
have the same value (:func:`check_agreement`), else the load is refused naming both values. Torch-free:
the ONNX path checks agreement without importing the builder (:func:`coerce_like`).

Example:
    >>> from facescope.models.options import ModelFile, coerce_option, to_saved
    >>> coerce_option("deformable", bool, "false")
    False
    >>> to_saved({"deformable": False, "depths": (2, 3)})
    {'deformable': False, 'depths': [2, 3]}
"""

from __future__ import annotations

import hashlib
import io
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from facescope.errors import ConfigError, WeightsError

FILE_KEY = "__model_file__"  # marks a ModelFile in the saved form


@dataclass(frozen=True)
class ModelFile:
    """The content of a file-valued model option.

    Attributes:
        name: the file's name when it was read (for messages; no directory).
        data: the file's bytes.
    """

    name: str
    data: bytes

    @classmethod
    def read(cls, path: str | Path, option: str = "option") -> ModelFile:
        """Read ``path``; a missing file is a one-line :class:`~facescope.errors.ConfigError`."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model option '{option}': file not found: {path}")
        return cls(path.name, path.read_bytes())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def text(self) -> str:
        """The content as UTF-8 text (e.g. a genotype JSON)."""
        return self.data.decode("utf-8")

    def json(self) -> Any:
        """The content parsed as JSON."""
        return json.loads(self.text())

    def open(self) -> io.BytesIO:
        """A binary file object over the content (``numpy.load`` reads it)."""
        return io.BytesIO(self.data)

    def __repr__(self) -> str:
        return f"ModelFile({self.name!r}, sha256 {self.sha256[:12]}, {len(self.data):,} bytes)"


def is_file_option(hint: Any) -> bool:
    """Whether a builder parameter's type hint declares a file (``ModelFile`` or ``ModelFile | None``)."""
    return hint is ModelFile or (get_origin(hint) in (Union, types.UnionType) and ModelFile in get_args(hint))


def builder_options(builder: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """``name -> (type hint, default)`` of a builder's keyword parameters (default ``inspect.Parameter.empty``
    when there is none; hint ``Any`` when unannotated)."""
    import inspect

    hints = typing.get_type_hints(builder)
    parameters = inspect.signature(builder).parameters.values()
    return {
        p.name: (hints.get(p.name, Any), p.default)
        for p in parameters
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def coerce_option(name: str, hint: Any, value: Any) -> Any:
    """``value`` as the builder's parameter ``name`` of type ``hint`` expects it.

    Strings (from the command line) are read as YAML scalars when the hint is not a string type
    (``"false"`` -> False, ``"3"`` -> 3, ``"null"`` -> None); a file-valued option reads its file.

    Raises:
        ConfigError: the value does not fit the hint, naming the option and the value.
    """
    from facescope.config import convert_value

    if is_file_option(hint):
        return _coerce_file(name, value)
    where = "model options"
    try:
        return convert_value(hint, value, where, name)
    except ConfigError:
        if not isinstance(value, str):
            raise
    return convert_value(hint, _parse_scalar(value), where, name)


def _coerce_file(name: str, value: Any) -> ModelFile | None:
    if value is None or isinstance(value, ModelFile):
        return value
    if isinstance(value, Mapping) and FILE_KEY in value:
        return from_saved(value)
    if isinstance(value, (str, Path)):
        return None if str(value).lower() in ("none", "null") else ModelFile.read(value, name)
    raise ConfigError(f"model option '{name}' is a file: give a path, got {value!r}")


def _parse_scalar(text: str) -> Any:
    import yaml  # here, not at the top: detection with ONNX weights never parses an option string

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def to_saved(value: Any) -> Any:
    """The JSON-ready saved form of an option value (or of a mapping of them): tuples become lists,
    paths strings, a :class:`ModelFile` ``{FILE_KEY: name, "sha256": ..., "base64": content}``."""
    if isinstance(value, ModelFile):
        import base64

        return {FILE_KEY: value.name, "sha256": value.sha256, "base64": base64.b64encode(value.data).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): to_saved(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_saved(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_saved(value: Any) -> Any:
    """Inverse of :func:`to_saved` for file records (other values are returned as they are)."""
    if isinstance(value, Mapping) and FILE_KEY in value:
        import base64

        data = base64.b64decode(value["base64"])
        if hashlib.sha256(data).hexdigest() != value.get("sha256"):
            raise WeightsError(f"the saved content of model file '{value[FILE_KEY]}' does not match its sha256")
        return ModelFile(str(value[FILE_KEY]), data)
    return value


def describe(value: Any) -> str:
    """A short text of a saved or given value for messages (files by name and hash, not content)."""
    if isinstance(value, Mapping) and FILE_KEY in value:
        return f"file '{value[FILE_KEY]}' (sha256 {str(value['sha256'])[:12]})"
    if isinstance(value, ModelFile):
        return f"file '{value.name}' (sha256 {value.sha256[:12]})"
    return repr(value)


def describe_saved(saved: Mapping[str, Any]) -> str:
    """``key=value, ...`` of a saved option mapping, for listings (``"none"`` when empty)."""
    return ", ".join(f"{key}={describe(value)}" for key, value in sorted(saved.items())) or "none"


def same_saved(a: Any, b: Any) -> bool:
    """Equality of saved forms; files compare by content hash (their names may differ)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping) and FILE_KEY in a and FILE_KEY in b:
        return a["sha256"] == b["sha256"]
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def coerce_like(saved: Any, given: Any, name: str) -> Any:
    """The saved form of ``given`` read the way a saved value is (for checks without the builder's hints:
    the torch-free ONNX path). A file record reads ``given`` as a path; a string value stays a string."""
    if isinstance(saved, Mapping) and FILE_KEY in saved:
        return to_saved(_coerce_file(name, given))
    if isinstance(given, str) and not isinstance(saved, str):
        given = _parse_scalar(given)
    if isinstance(saved, float) and isinstance(given, int) and not isinstance(given, bool):
        given = float(given)
    return to_saved(given)


def check_agreement(saved: Mapping[str, Any], given: Mapping[str, Any], source: str) -> None:
    """Refuse options given by the caller that differ from those saved in ``source`` (both in saved form).

    Raises:
        WeightsError: naming the option, the file's value and the given one.
    """
    for key, value in given.items():
        if key in saved and not same_saved(saved[key], value):
            raise WeightsError(
                f"{source} was built with model option {key}={describe(saved[key])}, but {key}={describe(value)} "
                f"was given; leave the option out (the file's own is used) or load a file built with it"
            )


def parse_model_arg(item: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)`` (the value stays a string; :func:`coerce_option` reads it)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip().isidentifier():
        raise ConfigError(f"model option '{item}' must look like KEY=VALUE (e.g. deformable=false)")
    return key.strip(), value


def saved_from_json(text: str | None, source: str) -> dict[str, Any] | None:
    """The saved options of an ONNX file's ``facescope_model_args`` metadata (None when absent)."""
    if text is None:
        return None
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{source}: facescope_model_args metadata is not JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise WeightsError(f"{source}: facescope_model_args metadata must be a JSON object, got {text[:60]!r}")
    return saved
