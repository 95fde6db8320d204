"""``facescope serve`` refuses bad options and a missing extra with one line and exit code 2, before
any model is built or port opened."""

from __future__ import annotations

import importlib
import importlib.util
import socket

import pytest
from test_cli_bad_inputs import _argparse_error

from facescope.cli import main


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--port", "70000", "argument --port: must be <= 65535, got 70000"),
        ("--port", "http", "argument --port: expected a port number in 1..65535, got 'http'"),
        ("--max-batch-size", "0", "argument --max-batch-size: must be >= 1, got 0"),
        ("--max-wait-ms", "-1", "argument --max-wait-ms: must be a number >= 0, got '-1'"),
        ("--max-body", "lots", "argument --max-body: must be a byte count such as 8G, 512M or 1073741824, got 'lots'"),
        ("--max-in-flight", "0", "argument --max-in-flight: must be >= 1, got 0"),
        ("--score-thresh", "1.5", "argument --score-thresh: must be in [0, 1], got 1.5"),
    ],
)
def test_bad_options_are_refused_by_the_parser(option: str, value: str, words: str, capsys) -> None:
    assert _argparse_error(["serve", option, value], capsys) == f"facescope serve: error: {words}"


def _fail(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_without_the_serve_extra_the_command_names_it(monkeypatch, capsys) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real_find_spec(name, *a))
    built = []
    monkeypatch.setattr("facescope.cli.serve.make_detector", lambda args: built.append(args))
    message = _fail(["serve", "--port", "8080"], capsys)
    assert message == 'facescope: error: facescope serve needs fastapi (not installed): pip install "facescope[serve]"'
    assert built == []  # before any work


def test_without_ray_serve_the_ray_mode_names_its_extra(monkeypatch, capsys) -> None:
    real_import = importlib.import_module

    def no_ray(name: str, *args):
        if name.startswith("ray"):
            raise ImportError("No module named 'ray'", name="ray")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    message = _fail(["serve", "--ray", "--replicas", "2"], capsys)
    assert message.endswith('pip install "facescope[serve-ray]"') and "Ray Serve" in message


def test_replicas_need_ray(capsys) -> None:
    pytest.importorskip("fastapi")
    assert "--replicas and --address need --ray" in _fail(["serve", "--replicas", "2"], capsys)


def test_a_port_in_use_is_refused_before_the_model_is_built(monkeypatch, capsys) -> None:
    pytest.importorskip("fastapi")
    built = []
    monkeypatch.setattr("facescope.cli.serve.make_detector", lambda args: built.append(args))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = _fail(["serve", "--port", str(port)], capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in message and "choose another --port" in message
    assert built == []
