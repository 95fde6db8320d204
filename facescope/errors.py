"""Exceptions raised by facescope.

Every error a user can cause (a bad path, a corrupt image, weights that do not fit, a misspelt
model name, a malformed config) is a :class:`FacescopeError` whose message is one line naming the
file, key or value at fault. The CLI prints that line and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable


class FacescopeError(Exception):
    """Base class of all user-facing facescope errors."""


class ImageReadError(FacescopeError):
    """An image could not be read or decoded."""


class WeightsError(FacescopeError):
    """A weights file is missing, corrupt, has the wrong hash or does not fit the architecture."""


class UnknownModelError(FacescopeError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownTTAProtocolError(FacescopeError, KeyError):
    """A test-time augmentation protocol name is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(FacescopeError):
    """A configuration file or override is invalid."""


class DataError(FacescopeError):
    """An annotation or prediction file is malformed."""


def suggest(word: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` when none is close."""
    import difflib  # here: only a misspelt name needs it, and detection's cold start does not

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
