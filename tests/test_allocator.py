"""glibc malloc tuning: applied once per process, switchable off, a no-op elsewhere."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "import facescope.allocator as a; first = a.tune_cpu_allocator(); "
    "print(first, a.tune_cpu_allocator(), a._applied)"
)


def run_probe(switch: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "FACESCOPE_MALLOC_TUNING"}
    if switch is not None:
        env["FACESCOPE_MALLOC_TUNING"] = switch
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning only exists on glibc")
def test_applied_once_on_glibc():
    assert run_probe(None) == "True True True"


@pytest.mark.parametrize("switch", ["0", "off", "false"])
def test_switched_off_by_environment(switch):
    assert run_probe(switch) == "False False False"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning only exists on glibc")
@pytest.mark.parametrize("tune_process,expected", [(False, "None None"), (True, "None True")])
def test_detector_applies_it_only_when_asked(tune_process, expected):
    """A library Detector leaves process-wide allocator state alone; the CLI asks for the tuning."""
    code = (
        "import facescope.allocator as a; from facescope import Detector; from facescope.models import create_model; "
        f"before = a._applied; Detector(create_model('scrfd_500m'), progress=False, tune_process={tune_process}); "
        "print(before, a._applied)"
    )
    env = {k: v for k, v in os.environ.items() if k != "FACESCOPE_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out.splitlines()[-1] == expected
