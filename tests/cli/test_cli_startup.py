"""What a cold ``facescope COMMAND`` loads: the named command's parser only (parsing exactly as the full
parser does), and, in a process the command line owns, start-up without garbage-collection passes."""

import argparse
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facescope.cli import COMMAND_MODULES, build_parser


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001


def test_every_command_is_mapped_to_its_module_in_help_order():
    assert list(commands_of(build_parser())) == list(COMMAND_MODULES)
    assert len(commands_of(build_parser("info"))) == 2  # the module of `info` registers `models` too


@pytest.mark.parametrize("command", list(COMMAND_MODULES))
def test_the_parser_of_one_command_is_the_full_parsers_subparser(command):
    full, alone = commands_of(build_parser())[command], commands_of(build_parser(command))[command]
    assert alone.format_help() == full.format_help()
    assert [a.dest for a in alone._actions] == [a.dest for a in full._actions]  # noqa: SLF001


PROBE = """
import gc, json, sys
from facescope.cli import main
owned = sys.argv[1] == "owned"
del sys.argv[1]
code = main() if owned else main(sys.argv[1:])  # no argv: the command line owns the process, as the script does
loaded = sorted(m for m in sys.modules if m.startswith("facescope."))
print(json.dumps({"code": code, "loaded": loaded, "frozen": gc.get_freeze_count(), "gc_enabled": gc.isenabled()}))
"""


def run_probe(mode: str, *args: str) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, mode, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    return path


def test_a_cold_detect_loads_only_the_detect_path_and_freezes_its_start_up(photo, tmp_path):
    report = run_probe("owned", "detect", str(photo), "--json", str(tmp_path / "faces.json"), "--quiet")
    others = {f"facescope.cli.{module}" for module in COMMAND_MODULES.values()} - {"facescope.cli.detect"}
    assert report["code"] == 0 and sorted(others & set(report["loaded"])) == []
    assert "facescope.inference.visualize" not in report["loaded"]  # nothing to draw without --out
    # the imported modules and the detector are frozen (never scanned again); collection is back on
    assert report["frozen"] > 10_000 and report["gc_enabled"]
    assert json.loads((tmp_path / "faces.json").read_text())["model"] == "retinaface_mnet025"


def test_called_in_process_main_freezes_nothing(photo, tmp_path):
    report = run_probe("in-process", "detect", str(photo), "--json", str(tmp_path / "faces.json"), "--quiet")
    assert report["code"] == 0 and report["frozen"] == 0 and report["gc_enabled"]
