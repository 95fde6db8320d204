"""Architecture searches, each a subcommand of ``facescope search`` (registered here, found by a package scan).

A search (ASFD's AutoFEM, SCRFD's computation redistribution) produces an architecture as data - a
genotype file, a set of depths and widths - that then trains, checkpoints, exports and runs like any
registered model through the model's file-valued builder options (:mod:`facescope.models.options`).
Its search loop runs on the engine (:mod:`facescope.engine.steps`: the ``bilevel`` step strategy and
parameter sets; :mod:`facescope.engine.optimizers`).

How a search registers: a module of this package (not starting with ``_``) calls :func:`register_search`
at import. The CLI imports every such module when it builds ``facescope search``, so the module must stay
torch-free and cheap; the work is named by ``run`` (``"module:function"``), imported only when the
command runs, as model builders are.

Example::

    # facescope/search/my_search.py
    from facescope.search import register_search

    def add_arguments(parser):
        parser.add_argument("recipe", help="search recipe YAML")

    register_search("my_search", summary="what it searches", run="facescope.search.my_search_run:main",
                    add_arguments=add_arguments)
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from facescope.named_registry import NamedRegistry


@dataclass(frozen=True)
class SearchCommand:
    """A registered search subcommand.

    Attributes:
        name: ``facescope search NAME``.
        summary: one line for ``facescope search --help``.
        run: ``"module:function"``; the function takes the parsed arguments and returns an exit code.
        add_arguments: adds the subcommand's arguments to its parser (None: it takes none).
        description: the subcommand's ``--help`` description (default: the summary).
    """

    name: str
    summary: str
    run: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str = ""

    def runner(self) -> Callable[[argparse.Namespace], int]:
        """Import the function that runs the search (this may import torch)."""
        module_name, _, attribute = self.run.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


def _load_search_modules() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_SEARCHES: NamedRegistry[SearchCommand] = NamedRegistry("search", hint="see `facescope search --help`", loader=_load_search_modules)


def register_search(
    name: str,
    *,
    summary: str,
    run: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str = "",
) -> SearchCommand:
    """Add ``facescope search NAME``; a duplicate name is an error, ``run`` must be ``"module:function"``."""
    if ":" not in run:
        raise ValueError(f"search '{name}': run must be 'module:function', got {run!r}")
    return _SEARCHES.add(name, SearchCommand(name, summary, run, add_arguments, description))


def merge_late_options(args: argparse.Namespace, add_options: Callable[[argparse.ArgumentParser], None], prog: str) -> None:
    """Options and ``key=value`` recipe overrides given after a search's positional argument, in any order.

    The subcommand's parser collects them in ``args.rest`` (``argparse.REMAINDER``); this parses them with the same
    options (``add_options``), sets those given on ``args`` and the overrides as ``args.overrides``.

    Raises:
        ConfigError: an argument that is neither an option nor ``key=value``.
    """
    from facescope.errors import ConfigError

    inner = argparse.ArgumentParser(prog=prog, add_help=False)
    add_options(inner)
    inner.add_argument("overrides", nargs="*")
    late = inner.parse_intermixed_args(list(getattr(args, "rest", [])))
    for key, value in vars(late).items():
        if key != "overrides" and value != inner.get_default(key):
            setattr(args, key, value)
    args.overrides = list(late.overrides)
    bad = [item for item in args.overrides if "=" not in item]
    if bad:
        raise ConfigError(f"'{bad[0]}' is not a key=value recipe override")


def list_searches() -> list[str]:
    """Registered search names, sorted."""
    return _SEARCHES.names()


def get_search(name: str) -> SearchCommand:
    """The search called ``name``; an unknown name suggests the closest registered one."""
    return _SEARCHES.get(name)


def searches_listing() -> str:
    """``name  summary`` lines of the registered searches ("" when none is)."""
    return _SEARCHES.listing(lambda command: command.summary)
