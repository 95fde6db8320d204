"""Every command in the base install (no torch, scipy, matplotlib, pillow): the ones that need no extra
run, the others name their extra in one line with exit code 2 before doing any work; closed pipes and
argument errors end without tracebacks. Fast: the missing extras are simulated by an import blocker
(tests/test_base_install.py checks a real base-install virtualenv, slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BASE_INSTALL = """
import sys
class Blocked:  # what the base install lacks
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'onnx', 'scipy', 'matplotlib', 'PIL'):
            raise ImportError(f"No module named '{name}'")
sys.meta_path.insert(0, Blocked())
from facescope.cli import main
code = main(sys.argv[1:])
leaked = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'matplotlib', 'PIL'})
print('LEAKED', leaked, file=sys.stderr)
sys.exit(code)
"""


def base_install(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BASE_INSTALL, *args], capture_output=True, text=True, cwd=cwd)


def _error_lines(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if not line.startswith("LEAKED")]


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["info", "scrfd_500m_kps"], "torch"),
        (["export", "scrfd_500m_kps", "--out", "x.onnx"], "torch"),
        (["train", "configs/scrfd_500m_kps.yaml", "--data-root", "nowhere"], "torch"),
        (["eval", "widerface", "--predictions", "p", "--gt", "g"], "eval"),
        (["eval", "fddb", "--ellipses", "e", "--images", "i"], "eval"),
        (["eval", "landmarks", "--labels", "l", "--images", "i"], "torch"),
    ],
)
def test_commands_needing_an_extra_name_it_in_one_line(args, extra, tmp_path):
    run = base_install(*args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = _error_lines(run)
    assert len(lines) == 1 and f'pip install "facescope[{extra}]"' in lines[0] and lines[0].startswith("facescope: error: ")
    assert not list(tmp_path.iterdir())  # nothing written


def test_models_and_default_detect_run_in_the_base_install(tmp_path, shared_data):
    listing = base_install("models")
    assert listing.returncode == 0, listing.stderr
    assert "retinaface_mnet025" in listing.stdout and "pip install \"facescope[torch]\"" in listing.stdout
    assert "LEAKED []" in listing.stderr
    faces = tmp_path / "faces.json"
    detect = base_install("detect", str(shared_data / "images/crowd/t1.jpg"), "--json", str(faces), "--quiet")
    assert detect.returncode == 0, detect.stderr
    assert "LEAKED []" in detect.stderr and faces.stat().st_size > 0


@pytest.mark.parametrize("command", ["models", "detect", "info", "export", "train", "eval", "eval widerface", "eval afw", "eval pascal"])
def test_help_of_every_command_runs_in_the_base_install(command):
    run = base_install(*command.split(), "--help")
    assert run.returncode == 0 and "usage:" in run.stdout, run.stderr


def test_argument_error_is_one_usage_line_and_one_error_line():
    run = base_install("detect", "photo.jpg", "--score-thresh", "2")
    assert run.returncode == 2
    lines = _error_lines(run)
    assert len(lines) == 2, lines
    assert lines[0].startswith("usage: facescope detect [options] source") and "--help" in lines[0]
    assert lines[1].startswith("facescope detect: error: argument --score-thresh")


@pytest.mark.parametrize("command", ["models", "detect {image}"])
def test_closed_pipe_ends_quietly(command, shared_data):
    """As `facescope models | head -1`, deterministically: the reader has gone before the first write."""
    args = command.format(image=shared_data / "images/crowd/t1.jpg").split()
    process = subprocess.Popen([sys.executable, "-m", "facescope", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait() == 141 and stderr == "", stderr  # 128 + SIGPIPE, as `yes | head -1`; no traceback
