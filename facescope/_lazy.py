"""Lazily imported package attributes (PEP 562), so torch-free parts of facescope stay torch-free."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, attributes: Mapping[str, str], namespace: dict[str, Any] | None = None) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that imports ``attributes[name]`` (a module path) on first use.

    With ``namespace`` (the package's ``globals()``) the value is cached there, so later look-ups are plain.
    """

    def __getattr__(name: str) -> Any:
        module = attributes.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(module), name)
        if namespace is not None:
            namespace[name] = value
        return value

    return __getattr__
