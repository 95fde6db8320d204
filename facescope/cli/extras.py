"""Which optional dependency group ("extra") a command needs, checked before it does any work.

The base install (numpy, OpenCV, onnxruntime, tqdm, PyYAML) runs ``facescope detect`` with ONNX
weights, ``facescope models`` and ``facescope eval afw|pascal``; every other command names the extra
it needs in one line (exit code 2) instead of failing later with an import traceback. Modules are
looked up with :func:`importlib.util.find_spec`, which does not import them (no torch start-up cost
for a command that is about to be refused).
"""

from __future__ import annotations

import importlib.util

from facescope.errors import FacescopeError

# extra -> the importable modules it provides (as pyproject.toml's optional-dependencies declare)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "torchvision", "onnx"),
    "eval": ("scipy", "matplotlib", "PIL"),
}


class MissingExtraError(FacescopeError):
    """A command needs an optional dependency group that is not installed."""


def is_installed(module: str) -> bool:
    """True when ``module`` can be imported (looked up, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or only ``modules`` of it) that cannot be imported."""
    return [m for m in (modules or EXTRA_MODULES[extra]) if not is_installed(m)]


def require_extra(what: str, extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` (one line naming the pip command) when ``extra`` is missing.

    Args:
        what: the command or option that needs it, e.g. ``"facescope info"``.
        extra: key of :data:`EXTRA_MODULES`.
        modules: only these modules of the extra are needed (default: all of them).
    """
    missing = missing_modules(extra, modules)
    if missing:
        raise MissingExtraError(
            f'{what} needs the "{extra}" extra ({", ".join(missing)} not installed): pip install "facescope[{extra}]"'
        )
