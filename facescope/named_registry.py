"""One small helper for the package's registries of named things (models, data pipelines, samplers,
step strategies, test-time-augmentation protocols, search commands).

A :class:`NamedRegistry` is a read-only mapping ``name -> item`` with three rules every registry
shares: a name is registered once (a second registration is a :class:`ValueError`, a programming
error caught at import), an unknown name is a one-line user error suggesting the closest registered
name (:func:`facescope.errors.suggest`, difflib), and :meth:`NamedRegistry.listing` gives the
``name  summary`` lines a ``--help`` text shows. Torch-free and dependent only on
:mod:`facescope.errors`, so any layer may hold a registry.

Example:
    >>> from facescope.named_registry import NamedRegistry
    >>> colours = NamedRegistry("colour")
    >>> colours.add("red", "#f00")
    '#f00'
    >>> colours.get("red")
    '#f00'
    >>> colours.get("rde")
    Traceback (most recent call last):
    ...
    facescope.errors.ConfigError: unknown colour 'rde' (did you mean 'red'?); registered: ['red']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from facescope.errors import ConfigError, FacescopeError, suggest

T = TypeVar("T")


class NamedRegistry(Mapping[str, T], Generic[T]):
    """Items registered under unique names.

    Args:
        kind: what an item is, for messages (``"data pipeline"``, ``"sampler"``).
        error: the exception type of an unknown name (a :class:`~facescope.errors.FacescopeError`).
        hint: text after the suggestion in the unknown-name message, or a function of the sorted names
            giving it; default ``registered: [names]``.
        loader: called once before the first lookup (e.g. to import the modules that register).
    """

    def __init__(
        self,
        kind: str,
        *,
        error: type[FacescopeError] = ConfigError,
        hint: str | Callable[[list[str]], str] | None = None,
        loader: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.error = error
        self.hint = hint
        self._items: dict[str, T] = {}
        self._loader = loader

    @classmethod
    def of(cls, kind: str, items: Iterable[tuple[str, T]], **options: Any) -> NamedRegistry[T]:
        """A registry holding ``(name, item)`` pairs (a name twice is a :class:`ValueError`); ``options`` as the constructor's."""
        registry: NamedRegistry[T] = cls(kind, **options)
        for name, item in items:
            registry.add(name, item)
        return registry

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None  # before the call: the loader registers into self
            loader()

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name``; a name already taken is a :class:`ValueError`."""
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str, wrap: Callable[[T], object] | None = None) -> Callable[[T], T]:
        """``@registry.decorator(name)`` registers the decorated object (or ``wrap(object)``), returns it."""

        def register(item: T) -> T:
            self.add(name, wrap(item) if wrap is not None else item)  # type: ignore[arg-type]
            return item

        return register

    def get(self, name: str) -> T:  # type: ignore[override] - a missing name raises, it has no default
        """The item called ``name``; an unknown name raises ``error`` with the closest registered name."""
        self._load()
        if name not in self._items:
            hint = self.hint(self.names()) if callable(self.hint) else self.hint or f"registered: {self.names()}"
            raise self.error(f"unknown {self.kind} '{name}'{suggest(name, self._items)}; {hint}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load()
        return sorted(self._items)

    def listing(self, summary: Callable[[T], str], indent: str = "  ") -> str:
        """One ``name  summary`` line per item, names aligned, for ``--help`` texts ("" when empty)."""
        names = self.names()
        width = max((len(n) for n in names), default=0)
        return "\n".join(f"{indent}{name:<{width}}  {summary(self._items[name])}" for name in names)

    def __getitem__(self, name: str) -> T:
        self._load()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._items)

    def __len__(self) -> int:
        self._load()
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items
