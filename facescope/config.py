"""Typed dataclass configs; YAML is only their file form.

* Unknown keys are errors that name the file, the line and the closest valid key.
* Values are checked against the dataclass field types (int, float, bool, str, tuples, lists,
  Optional, Literal, nested dataclasses).
* ``key.sub=value`` overrides (values parsed as YAML scalars) are applied before validation; their
  errors name the override (``override 'optim.lrr=0.1': unknown key 'lrr' in optim``), not a YAML line.
* Value checks (ranges, registered names) live in the dataclasses' ``__post_init__`` and raise
  :class:`FieldError`; the loader adds where the value came from (``file:line`` or the override).

Example:
    >>> @dataclass
    ... class Optim:
    ...     lr: float = 0.01
    >>> @dataclass
    ... class Recipe:
    ...     optim: Optim = field(default_factory=Optim)
    >>> from_dict(Recipe, {"optim": {"lr": 0.02}}).optim.lr
    0.02
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml

from facescope.errors import ConfigError, suggest

T = TypeVar("T")


class FieldError(ConfigError):
    """One field of a config dataclass has a bad value (raised in ``__post_init__``).

    Args:
        field: the field's name in its dataclass, e.g. ``"lr"``.
        problem: what is wrong, e.g. ``"must be > 0, got -0.1"``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"'{field}' {problem}")
        self.field = field
        self.problem = problem


def require(condition: bool, field: str, problem: str) -> None:
    """Raise :class:`FieldError` for ``field`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise FieldError(field, problem)


def load_yaml(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Read ``path`` into a ``cls`` instance, applying ``key=value`` overrides first.

    Errors in the file name ``file:line``; errors in an override name the override.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}".replace("\n", " "))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    locations = {key: f"{path}:{line}" for key, line in _key_lines(text).items()}
    for item in overrides:
        parts, _ = _parse_override(item)
        check_override_key(cls, parts, item)
        key = ".".join(parts)
        for known in [k for k in locations if k == key or k.startswith(f"{key}.") or k.startswith(f"{key}[")]:
            del locations[known]  # the override replaced what the file said there
        locations[key] = f"override '{item}'"
    data = apply_overrides(data, overrides)
    return _build(cls, data, str(path), locations, prefix="")


def check_override_key(cls: type, parts: Sequence[str], item: str) -> None:
    """Check that ``a.b.c`` of an override names a field of ``cls`` (free-form mappings end the check)."""
    node: Any = cls
    for depth, part in enumerate(parts):
        if not dataclasses.is_dataclass(node):
            if get_origin(node) in (dict, Mapping):
                return  # a free-form mapping (e.g. ``loss:``): its consumer checks the keys
            raise ConfigError(f"override '{item}': '{'.'.join(parts[:depth])}' is not a section")
        fields = {f.name for f in dataclasses.fields(node) if f.init}
        if part not in fields:
            section = f" in {'.'.join(parts[:depth])}" if depth else ""
            raise ConfigError(f"override '{item}': unknown key '{part}'{section}{suggest(part, fields)}")
        node = _strip_optional(typing.get_type_hints(node)[part])


def _strip_optional(hint: Any) -> Any:
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if get_origin(hint) in (Union, types.UnionType) and len(args) == 1 else hint


def _parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=0.1"`` -> (``["a", "b"]``, 0.1); the value is read as YAML (a string if it is not)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        parts, value = _parse_override(item)
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<config>", lines: dict[str, int] | None = None) -> T:
    """Build a dataclass from a mapping, validating keys and value types.

    ``lines`` maps dotted keys to 1-based line numbers of ``source`` (for error messages).
    """
    locations = {key: f"{source}:{line}" for key, line in (lines or {}).items()}
    return _build(cls, data, source, locations, prefix="")


def _where(source: str, lines: dict[str, str], key: str) -> str:
    """Where ``key``'s value came from: ``file:line``, ``override '...'``, or the source."""
    return lines.get(key, source)


def _build(cls: type, data: Any, source: str, lines: dict[str, str], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        section = prefix.rstrip(".")
        raise ConfigError(f"{_where(source, lines, section)}: '{section or 'config'}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{_where(source, lines, full)}: unknown key '{full}'{suggest(str(key), fields)}")
        kwargs[key] = _convert(hints[key], value, source, lines, full)
    try:
        return cls(**kwargs)
    except FieldError as exc:
        key = f"{prefix}{exc.field}"
        raise ConfigError(f"{_where(source, lines, key)}: '{key}' {exc.problem}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_where(source, lines, prefix.rstrip('.'))}: {exc}")


def convert_value(hint: Any, value: Any, source: str, key: str) -> Any:
    """``value`` checked against and converted to the type ``hint`` as a config field's value is
    (e.g. a builder option); an error reads ``"{source}: '{key}' must be bool, got 'maybe'"``."""
    return _convert(hint, value, source, {}, key)


def _convert(hint: Any, value: Any, source: str, lines: dict[str, str], key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    where = _where(source, lines, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, lines, prefix=f"{key}.")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, source, lines, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: '{key}' = {value!r} fits none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list, Sequence):
        return _convert_sequence(origin, args, value, source, lines, key)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(hint, value, where, key)


def _convert_sequence(origin: Any, args: tuple, value: Any, source: str, lines: dict[str, str], key: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{_where(source, lines, key)}: '{key}' must be a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{_where(source, lines, key)}: '{key}' needs {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, source, lines, key) for a, v in zip(args, value))
    item = args[0] if args else Any
    items = [_convert(item, v, source, lines, f"{key}[{i}]" if dataclasses.is_dataclass(item) else key) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _convert_scalar(hint: Any, value: Any, where: str, key: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "5e-4" as a string
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Path:
        if isinstance(value, str):
            return Path(value)
    else:
        return value
    raise ConfigError(f"{where}: '{key}' must be {getattr(hint, '__name__', hint)}, got {value!r}")


def to_dict(config: Any) -> Any:
    """Dataclass -> plain YAML-ready data (tuples become lists, paths strings)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


def dump_yaml(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths to their 1-based line numbers in a YAML document."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, key: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                full = f"{key}.{key_node.value}" if key else str(key_node.value)
                lines[full] = key_node.start_mark.line + 1
                walk(value_node, full)
        elif isinstance(node, yaml.SequenceNode):
            for i, item_node in enumerate(node.value):
                lines[f"{key}[{i}]"] = item_node.start_mark.line + 1
                walk(item_node, f"{key}[{i}]")

    if root is not None:
        walk(root, "")
    return lines
