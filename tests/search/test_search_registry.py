"""The registry the architecture searches register into, and the `facescope search` group built from it."""

import argparse

import pytest

import facescope.search as search
from facescope.cli import main
from facescope.errors import ConfigError


@pytest.fixture
def empty_registry(monkeypatch):
    """The registry as it is, with its entries set aside (and restored) for the test."""
    search.list_searches()  # run the package scan first, so that it does not run inside the test
    monkeypatch.setattr(search._SEARCHES, "_items", {})
    return search


def test_with_none_registered_the_group_says_so(empty_registry, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--help"])
    assert exit_info.value.code == 0
    assert "no search is registered in this installation: `facescope search` has no subcommands yet." in capsys.readouterr().out
    assert main(["search"]) == 2
    assert "facescope: error: no search is registered in this installation" in capsys.readouterr().err


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=int, default=1)


def run_fake(args: argparse.Namespace) -> int:
    print(f"searched with budget {args.budget}")
    return 0


def test_a_registered_search_is_a_subcommand(empty_registry, capsys):
    empty_registry.register_search("fake_cr", summary="a stand-in search", run=f"{__name__}:run_fake", add_arguments=_add_arguments)
    with pytest.raises(ValueError, match="search 'fake_cr' is already registered"):
        empty_registry.register_search("fake_cr", summary="again", run=f"{__name__}:run_fake")
    with pytest.raises(ValueError, match="run must be 'module:function'"):
        empty_registry.register_search("other", summary="x", run="no_colon")
    with pytest.raises(ConfigError, match=r"unknown search 'fake_rc' \(did you mean 'fake_cr'\?\); see `facescope search --help`"):
        empty_registry.get_search("fake_rc")
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert "registered searches:\n  fake_cr  a stand-in search" in capsys.readouterr().out
    assert main(["search", "fake_cr", "--budget", "3"]) == 0 and "searched with budget 3" in capsys.readouterr().out
    assert main(["search"]) == 2 and "choose a search: fake_cr" in capsys.readouterr().err
