"""The README runs as written: its ```bash and ```python examples, in a temporary folder prepared
with the shared data under the names the README uses.

Rules
-----
* Every ```bash line (``\\`` continuations joined, ``#`` comments dropped, ``$VARS`` expanded) that
  calls ``facescope`` runs in-process (``facescope.cli.main``), in README order, in one working
  folder, and must exit 0. Other programs are skipped with a reason (:data:`SKIPPED_PROGRAMS`).
* A ``facescope`` command runs only when every input path it names exists in that folder
  (positional sources and the values of :data:`INPUT_OPTIONS`; a value counts as a path when it
  holds a ``/`` or a file suffix). Outputs (``--out``, ``--json``, ``--crops``) are not checked.
  An earlier command's output counts (``export --out fast.onnx`` then ``detect --weights fast.onnx``).
  So ``facescope train ... --data-root /data/widerface`` is skipped: it needs the full WIDER FACE
  training set.
* ``facescope serve`` (a server: it runs until stopped) runs as a subprocess with a bounded lifetime:
  its ``--port`` is replaced by a free one, and the example passes when ``/healthz`` answers 200 within
  :data:`SERVER_START_TIMEOUT_S`, a POST of ``photo.jpg`` to ``/v1/detect`` answers 200 with faces, and
  SIGTERM stops it with exit code 0. The README's ``curl`` lines against that server are skipped
  (:data:`SKIPPED_PROGRAMS`): the POST above is what they do.
* Every ```python block runs on its own (a fresh namespace, as a reader pastes it), in the same folder.
* Nothing is downloaded: the weights cache (``$FACESCOPE_HOME/weights``) holds links to the shared
  files whose sha256 equals a registered release; a command needing another release fails.
* Examples that are known not to run as written are listed in :data:`KNOWN_BROKEN` with the reason
  and marked ``xfail(strict=True)``: once the README is fixed, the strict xfail fails and the entry
  must go.

Placeholder names -> shared data (``$FACESCOPE_SHARED_DATA``), linked into the working folder
---------------------------------------------------------------------------------------------
``PHOTO.jpg``, ``photo.jpg``, ``group.jpg``, ``x.jpg`` -> ``images/crowd/t1.jpg``;
``a.jpg``, ``b.jpg`` -> ``images/photos/1.jpg``, ``2.jpg``; ``photos/`` -> a folder of those two;
``scrfd_500m_kps.onnx``, ``scrfd_2.5g_kps.onnx``, ``my/scrfd_2.5g_kps.onnx`` -> ``weights/scrfd/``;
``ground_truth/`` -> ``widerface/ground_truth``; ``WIDER_val/images`` -> ``widerface/WIDER_val/images``;
``preds/``, ``a/``, ``c/`` -> ``widerface/predictions/yolov7_face``;
``b/`` -> ``widerface/predictions/retinaface_mnet_retrained``; ``configs/`` and ``benchmarks/configs/`` -> the
repository's;
``../shared/data`` -> ``$FACESCOPE_SHARED_DATA`` (the README's relative paths from the repository root);
``clip.mp4`` -> a 30-frame 640x480 pan over ``images/crowd/t1.jpg`` at 25 fps, encoded here (never stored).

The whole README takes minutes (each command builds a detector; WIDER FACE runs and exports take
longer), so it is ``slow`` (``pytest -m slow tests/test_readme.py``); the default suite runs the
quick start: the first ``facescope detect`` command and the first Python block.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the same location rule as tests/conftest.py (imported by name, 'conftest' is ambiguous: tests/engine has one too)
SHARED_DATA = Path(os.environ.get("FACESCOPE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()

README = REPO / "README.md"

PLACEHOLDERS: dict[str, str] = {
    "PHOTO.jpg": "images/crowd/t1.jpg",
    "photo.jpg": "images/crowd/t1.jpg",
    "group.jpg": "images/crowd/t1.jpg",
    "x.jpg": "images/crowd/t1.jpg",
    "a.jpg": "images/photos/1.jpg",
    "b.jpg": "images/photos/2.jpg",
    "photos/1.jpg": "images/photos/1.jpg",
    "photos/2.jpg": "images/photos/2.jpg",
    "scrfd_500m_kps.onnx": "weights/scrfd/scrfd_500m_kps.onnx",
    "scrfd_2.5g_kps.onnx": "weights/scrfd/scrfd_2.5g_kps.onnx",
    "my/scrfd_2.5g_kps.onnx": "weights/scrfd/scrfd_2.5g_kps.onnx",
    "ground_truth": "widerface/ground_truth",
    "WIDER_val/images": "widerface/WIDER_val/images",
    "preds": "widerface/predictions/yolov7_face",
    "a": "widerface/predictions/yolov7_face",
    "b": "widerface/predictions/retinaface_mnet_retrained",
    "c": "widerface/predictions/yolov7_face",
}

SKIPPED_PROGRAMS = {
    "pip": "set-up command (the CI and a clean clone run it, not the test suite)",
    "pytest": "set-up command (runs the test suite itself)",
    "python3": "set-up command",
    "torchrun": "several processes or nodes",
    "curl": "a request to the `facescope serve` example's server (the test posts the same photo while it runs)",
}
SERVER_COMMANDS = {"serve"}  # facescope sub-commands that run until stopped
SERVER_START_TIMEOUT_S = 300  # Ray Serve replicas on a loaded 2-core machine take a minute

INPUT_OPTIONS = {"--weights", "--images", "--gt", "--predictions", "--data-root", "--detections", "--ellipses", "--labels"}
OUTPUT_OPTIONS = {"--out", "--json", "--crops"}
PATH_SUFFIXES = (".jpg", ".jpeg", ".png", ".onnx", ".pth", ".yaml", ".yml", ".txt", ".json", ".tar", ".mp4")

# substring of an example -> why it does not run as written (xfail, strict)
KNOWN_BROKEN: dict[str, str] = {}


@dataclass(frozen=True)
class Example:
    kind: str  # "bash" or "python"
    code: str
    line: int  # README line of the example's first line

    @property
    def id(self) -> str:
        words = re.sub(r"[^A-Za-z0-9_.]+", "-", self.code.strip().splitlines()[0])[:48].strip("-")
        return f"L{self.line}-{self.kind}-{words}"


def extract_examples(text: str) -> list[Example]:
    """One Example per shell command (continuations joined) and per Python block."""
    examples: list[Example] = []
    for match in re.finditer(r"^```(bash|python)[ \t]*\n(.*?)^```", text, flags=re.M | re.S):
        kind, body = match.group(1), match.group(2)
        first_line = text.count("\n", 0, match.start()) + 2
        if kind == "python":
            examples.append(Example(kind, body, first_line))
            continue
        pending, start = "", first_line
        for offset, raw in enumerate(body.splitlines()):
            if not pending:
                start = first_line + offset
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            command = (pending + raw).strip()
            pending = ""
            if command and not command.startswith("#"):
                examples.append(Example(kind, command, start))
    return examples


EXAMPLES = extract_examples(README.read_text(encoding="utf-8")) if README.is_file() else []


def _tokens(command: str) -> list[str]:
    return [os.path.expandvars(token) for token in shlex.split(command, comments=True)]


def _input_paths(argv: list[str]) -> list[str]:
    """Paths a facescope command reads: positional arguments and INPUT_OPTIONS values."""
    paths, previous = [], ""
    for token in argv[1:]:
        if token.startswith("-"):
            previous = token.split("=", 1)[0]
            if "=" in token and previous in INPUT_OPTIONS:
                paths.append(token.split("=", 1)[1])
                previous = ""
            continue
        if previous in OUTPUT_OPTIONS:
            pass
        elif previous in INPUT_OPTIONS or previous == "" or previous == "--compare":
            # `--compare NAME=DIR` and recipe overrides `key.sub=PATH` name the path after the "="
            keyed = previous == "--compare" or (previous == "" and re.match(r"[A-Za-z_][\w.]*=", token))
            value = token.split("=", 1)[1] if keyed else token
            if previous != "" or "/" in value or value.endswith(PATH_SUFFIXES):
                paths.append(value)
        previous = ""
    return [p for p in paths if "/" in p or p.endswith(PATH_SUFFIXES)]


def _is_quick_start(example: Example) -> bool:
    """The first ``facescope detect`` command and the first Python block of the README."""
    first_detect = next((e for e in EXAMPLES if e.kind == "bash" and _tokens(e.code)[:2] == ["facescope", "detect"]), None)
    first_python = next((e for e in EXAMPLES if e.kind == "python"), None)
    return example in (first_detect, first_python)


def _marks(example: Example) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.shared]
    if not _is_quick_start(example):
        marks.append(pytest.mark.slow)
    for needle, reason in KNOWN_BROKEN.items():
        if needle in example.code:
            marks.append(pytest.mark.xfail(reason=f"README example {reason}", strict=True))
    return marks


def _link(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source, target_is_directory=source.is_dir())


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/work`` with the placeholders linked in, and ``<tmp>/shared/data`` -> the shared data."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found: {SHARED_DATA} (set FACESCOPE_SHARED_DATA)")
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    _link(root / "shared" / "data", SHARED_DATA)
    _link(work / "configs", REPO / "configs")
    # the recipes only: a link to all of benchmarks/ would let an example write into the repository's results
    _link(work / "benchmarks" / "configs", REPO / "benchmarks" / "configs")
    for name, relative in PLACEHOLDERS.items():
        if (SHARED_DATA / relative).exists():
            _link(work / name, SHARED_DATA / relative)
    _write_clip(work / "clip.mp4", SHARED_DATA / "images/crowd/t1.jpg")
    return work


def _write_clip(path: Path, photo_path: Path) -> None:
    """The README's ``clip.mp4``: a short pan over a shared photo."""
    import cv2
    import numpy as np

    from oracles.video_clips import pan, render, write_video

    photo = cv2.imread(str(photo_path))
    if photo is not None:
        write_video(str(path), render(pan("pan", 30, 0.8, photo.shape[:2]), photo, np.zeros((0, 4))), fps=25.0)


@pytest.fixture()
def readme_env(readme_folder: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Working directory, FACESCOPE_SHARED_DATA and a weights cache of the shared release files."""
    from facescope.models.registry import get_model_entry, list_models
    from facescope.models.weights import file_sha256

    shared_files = {file_sha256(p): p for p in SHARED_DATA.glob("weights/*/*") if p.suffix in (".onnx", ".pth")}
    for name in list_models("*"):
        for spec in get_model_entry(name).weights:
            if spec.sha256 in shared_files:
                _link(isolated_home / "weights" / spec.filename, shared_files[spec.sha256])
    monkeypatch.chdir(readme_folder)
    monkeypatch.setenv("FACESCOPE_SHARED_DATA", str(SHARED_DATA))
    return readme_folder


def test_examples_were_found() -> None:
    """The extractor still understands the README: its quick-start and Python API examples are there."""
    kinds = {example.kind for example in EXAMPLES}
    assert kinds == {"bash", "python"}
    assert any(_tokens(e.code)[:2] == ["facescope", "detect"] for e in EXAMPLES if e.kind == "bash")
    assert any("Detector(" in e.code for e in EXAMPLES if e.kind == "python")


def test_input_path_rule() -> None:
    argv = _tokens("facescope eval widerface --images WIDER_val/images --gt ground_truth/ --out runs/x --weights pretrained")
    assert _input_paths(argv) == ["WIDER_val/images", "ground_truth/"]
    assert _input_paths(_tokens("facescope detect photo.jpg --out a.jpg --json f.json --weights=my/w.onnx")) == ["photo.jpg", "my/w.onnx"]
    assert _input_paths(_tokens("facescope eval widerface --predictions a/ --compare B=b/ --gt g/")) == ["a/", "b/", "g/"]
    assert _input_paths(_tokens("facescope train configs/x.yaml --data-root /data/widerface optim.lr=0.005")) == [
        "configs/x.yaml", "/data/widerface"]
    assert _input_paths(_tokens("facescope train c/x.yaml model_args.genotype=runs/s/genotype.json")) == [
        "c/x.yaml", "runs/s/genotype.json"]


def test_server_port_rule() -> None:
    assert _without_port(_tokens("facescope serve --port 8080 --model m --port=9 --ray")[1:]) == ["serve", "--model", "m", "--ray"]


@pytest.mark.parametrize(
    "example", [pytest.param(e, id=e.id, marks=_marks(e)) for e in EXAMPLES if e.kind == "bash"]
)
def test_readme_shell_example(example: Example, readme_env: Path) -> None:
    from facescope.cli import main

    argv = _tokens(example.code)
    program = argv[0] if argv else ""
    if program in SKIPPED_PROGRAMS:
        pytest.skip(f"`{program}`: {SKIPPED_PROGRAMS[program]}")
    if program != "facescope":
        pytest.skip(f"not a facescope command: {program}")
    missing = [p for p in _input_paths(argv) if not (readme_env / p).exists()]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: neither in the shared data nor written by an earlier example")
    if argv[1:2] and argv[1] in SERVER_COMMANDS:
        _run_server_example(argv, readme_env)
        return
    assert main(argv[1:]) == 0, example.code


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _without_port(args: list[str]) -> list[str]:
    """``args`` less ``--port N`` / ``--port=N``."""
    kept, skip_next = [], False
    for arg in args:
        if skip_next or arg.startswith("--port="):
            skip_next = False
            continue
        skip_next = arg == "--port"
        if not skip_next:
            kept.append(arg)
    return kept


def _run_server_example(argv: list[str], folder: Path) -> None:
    """Start the server on a free port, check it answers, stop it with SIGTERM (see the module's rules)."""
    httpx = pytest.importorskip("httpx", reason="checking a server example needs httpx (the test extra)")
    port = _free_port()
    args = _without_port(argv[1:]) + ["--port", str(port)]
    log = folder / f"server-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "facescope", *args], cwd=folder, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer from /healthz in {SERVER_START_TIMEOUT_S} s:\n{log.read_text()}"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        photo = (folder / "photo.jpg").read_bytes()
        answer = httpx.post(url + "/v1/detect", content=photo, headers={"Content-Type": "image/jpeg"}, timeout=120)
        assert answer.status_code == 200 and answer.json()["faces"], answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    assert code == 0, log.read_text()


@pytest.mark.parametrize(
    "example", [pytest.param(e, id=e.id, marks=_marks(e)) for e in EXAMPLES if e.kind == "python"]
)
def test_readme_python_example(example: Example, readme_env: Path) -> None:
    code = compile(example.code, f"README.md:{example.line}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - the README's own example


def test_the_detector_signature_in_the_readme_is_the_real_one() -> None:
    import inspect

    from facescope.inference.detector import Detector

    line = next(line for line in README.read_text().splitlines() if line.startswith("`Detector(model="))
    written = line[len("`Detector(") : line.rindex(")`")]
    real = inspect.signature(Detector.__init__).parameters.values()
    parts: list[str] = []
    for parameter in list(real)[1:]:  # self
        if parameter.kind is parameter.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        default = parameter.default
        text = "16_000_000" if default == 16_000_000 else repr(default).replace("'", '"')
        parts.append(parameter.name if default is parameter.empty else f"{parameter.name}={text}")
    assert written == ", ".join(parts)
