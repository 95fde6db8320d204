"""Registered factories with typed options (the shared part of the sampler and step-strategy registries)."""

from dataclasses import dataclass

import pytest

from facescope.engine.factories import register_factory
from facescope.errors import ConfigError
from facescope.named_registry import NamedRegistry


@dataclass
class Every:
    n: int = 2


def test_options_are_typed_and_passed_only_to_factories_that_take_them():
    registry = NamedRegistry("picker")
    register_factory(registry, "every", summary="every n-th", options_type=Every)(lambda size, options=None: list(range(0, size, options.n)))
    register_factory(registry, "all", summary="all")(lambda size: list(range(size)))
    assert registry.get("every").build(7, options={"n": 3}, source="picker_options") == [0, 3, 6]
    assert registry.get("every").build(5, options={}, source="picker_options") == [0, 2, 4]  # the dataclass default
    assert registry.get("all").build(3, options={}, source="picker_options") == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"^picker 'all' takes no options, got \['n'\]$"):
        registry.get("all").build(3, options={"n": 1}, source="picker_options")
    with pytest.raises(ConfigError, match=r"^picker_options: unknown key 'm'$"):
        registry.get("every").typed_options({"m": 1}, "picker_options")
