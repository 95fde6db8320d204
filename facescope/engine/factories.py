"""Registered factories whose settings are a typed options dataclass (samplers, step strategies).

A recipe names the factory (``data.sampler``, ``optim.step_strategy``) and gives its settings as a
mapping (``data.sampler_options``, ``optim.step_options``); :meth:`FactoryEntry.typed_options` reads
that mapping into the factory's options dataclass (unknown keys are errors), and
:meth:`FactoryEntry.build` calls the factory with them.

Example:
    >>> from dataclasses import dataclass
    >>> from facescope.named_registry import NamedRegistry
    >>> @dataclass
    ... class Every:
    ...     n: int = 2
    >>> registry = NamedRegistry("picker")
    >>> @register_factory(registry, "every", summary="every n-th index", options_type=Every)
    ... def every(size, options=None):
    ...     return list(range(0, size, options.n))
    >>> registry.get("every").build(7, options={"n": 3}, source="picker_options")
    [0, 3, 6]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from facescope.config import from_dict
from facescope.errors import ConfigError
from facescope.named_registry import NamedRegistry


@dataclass(frozen=True)
class FactoryEntry:
    """A registered factory.

    Attributes:
        kind: what it builds, for messages (``"sampler"``).
        name: its registered name.
        factory: called with the caller's arguments, plus ``options=`` when it takes options.
        options_type: the dataclass of its settings (None: it takes none).
        summary: one line for listings.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    options_type: type | None
    summary: str

    def typed_options(self, options: Mapping[str, Any], source: str) -> Any:
        """``options`` as the factory's options dataclass (None when it takes none); ``source`` names them in errors."""
        if self.options_type is None:
            if options:
                raise ConfigError(f"{self.kind} '{self.name}' takes no options, got {sorted(options)}")
            return None
        return from_dict(self.options_type, options, source=source)

    def build(self, *args: Any, options: Mapping[str, Any], source: str, **kwargs: Any) -> Any:
        """``factory(*args, **kwargs[, options=typed options])``."""
        typed = self.typed_options(options, source)
        return self.factory(*args, **kwargs, **({} if typed is None else {"options": typed}))


def register_factory(
    registry: NamedRegistry[FactoryEntry], name: str, *, summary: str, options_type: type | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a factory under ``name`` in ``registry``; a duplicate name is an error."""
    return registry.decorator(name, wrap=lambda factory: FactoryEntry(registry.kind, name, factory, options_type, summary))
