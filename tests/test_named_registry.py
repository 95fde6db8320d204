"""The registry helper every registry of the package uses: one name once, suggestions, listings."""

import pytest

from facescope.errors import ConfigError, UnknownModelError
from facescope.named_registry import NamedRegistry


def test_names_are_unique_and_lookups_suggest_the_closest():
    registry = NamedRegistry("colour")
    registry.add("red", 1)
    registry.add("green", 2)
    with pytest.raises(ValueError, match=r"^colour 'red' is already registered$"):
        registry.add("red", 3)
    assert registry.get("green") == 2 and registry.names() == ["green", "red"] and len(registry) == 2
    with pytest.raises(ConfigError, match=r"^unknown colour 'gren' \(did you mean 'green'\?\); registered: \['green', 'red'\]$"):
        registry.get("gren")
    with pytest.raises(ConfigError, match=r"^unknown colour 'blue'; registered"):  # nothing close: no suggestion
        registry.get("blue")


def test_error_type_hint_and_lazy_loader():
    calls = []
    registry = NamedRegistry("model", error=UnknownModelError, hint="see `facescope models`", loader=lambda: calls.append(registry.add("a_model", 0)))
    assert calls == []  # nothing loaded until the first lookup
    assert "a_model" in registry and calls == [0]
    assert list(registry) == ["a_model"] and calls == [0]  # the loader runs once
    with pytest.raises(UnknownModelError, match=r"^unknown model 'a_mdel' \(did you mean 'a_model'\?\); see `facescope models`$"):
        registry.get("a_mdel")


def test_decorator_and_listing():
    registry = NamedRegistry("strategy")

    @registry.decorator("long_name", wrap=lambda f: (f, "does a thing"))
    def f():
        return 1

    registry.add("x", (None, "another"))
    assert f() == 1 and registry.get("long_name") == (f, "does a thing")
    assert registry.listing(lambda item: item[1]) == "  long_name  does a thing\n  x          another"
    assert NamedRegistry("empty").listing(str) == ""


@pytest.mark.parametrize(
    "module, attribute",
    [("facescope.models.registry", "_MODELS"), ("facescope.data.pipelines", "_PIPELINES"), ("facescope.engine.samplers", "_SAMPLERS"),
     ("facescope.inference.tta", "TTA_PROTOCOLS"), ("facescope.engine.steps", "_STRATEGIES"), ("facescope.search", "_SEARCHES")],
)
def test_the_package_registries_use_it(module, attribute):
    import importlib

    assert isinstance(getattr(importlib.import_module(module), attribute), NamedRegistry)


def test_a_registry_from_pairs_refuses_a_name_twice_and_takes_a_computed_hint():
    registry = NamedRegistry.of("protocol", [("flip", 1), ("multiscale", 2)], hint=lambda names: f"known: {', '.join(names)}")
    with pytest.raises(ConfigError, match=r"^unknown protocol 'flp' \(did you mean 'flip'\?\); known: flip, multiscale$"):
        registry.get("flp")
    with pytest.raises(ValueError, match="protocol 'flip' is already registered"):
        NamedRegistry.of("protocol", [("flip", 1), ("flip", 2)])
