"""``facescope`` command line: a thin layer over the Python API.

Each sub-command lives in its own module exposing ``register(subparsers)``; the parser it adds
sets ``func`` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from facescope.cli.startup import own_process, startup_phase
from facescope.errors import FacescopeError

EXAMPLES = """examples:
  facescope detect photo.jpg --out annotated.jpg --json faces.json
  facescope detect photos/ --model scrfd_500m_kps --out annotated/ --json faces.json
  facescope models
  facescope info scrfd_2.5g --size 1280x720
  facescope eval widerface --predictions preds/ --gt wider_face_split_gt/
  facescope export scrfd_500m_kps --weights scrfd_500m_kps.onnx --out fast.onnx
  facescope quantize scrfd_2.5g_kps --weights scrfd_2.5g_kps.onnx --calibration photos/ --out int8.onnx
  facescope train configs/scrfd_500m_kps.yaml --data-root /data/widerface
  facescope serve --model scrfd_500m_kps --weights scrfd_500m_kps.onnx --port 8080
"""


class ShortErrorParser(argparse.ArgumentParser):
    """An argument error prints one usage line (the command and its positionals, pointing to
    ``--help``) and one error line, instead of argparse's whole usage block; exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's signature returns NoReturn
        positionals = " ".join(
            a.metavar or a.dest for a in self._actions if not a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._SubParsersAction)  # noqa: SLF001 - argparse has no public test
        )
        commands = " COMMAND" if self._subparsers is not None else ""
        line = f"usage: {self.prog} [options]{commands}{' ' + positionals if positionals else ''} (see {self.prog} --help)"
        self.exit(2, f"{line}\n{self.prog}: error: {message}\n")


#: Every sub-command -> the module of this package that registers it, in the order ``--help`` lists them.
COMMAND_MODULES = {
    "detect": "detect",
    "eval": "evaluate",
    "train": "train",
    "export": "export",
    "quantize": "quantize",
    "models": "models",
    "info": "models",
    "serve": "serve",
    "search": "search",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``facescope`` parser with every sub-command, or, given a known ``command``, with that one only.

    The parser of one command imports only the module that registers it (a cold ``facescope detect``
    imports no training, evaluation or serving code) and parses that command's arguments exactly as the
    full parser does; anything else (no command, ``--help``, an unknown name) needs the full one."""
    parser = ShortErrorParser(
        prog="facescope",
        description="Face detection with SCRFD, RetinaFace, DSFD and SHF (ASFD is planned).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"facescope.cli.{module}").register(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names when its first word is one (the top-level parser has no options
    besides ``--help``, so a command can only come first), else None."""
    return argv[0] if argv and argv[0] in COMMAND_MODULES else None


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head -1` reports for the writer, without a traceback


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facescope`` script; returns the process exit code. Without ``argv`` (the
    script, ``python -m facescope``) the command line owns the process and starts up without garbage
    collection passes (:mod:`facescope.cli.startup`)."""
    if argv is None:
        own_process()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with startup_phase():  # the command's modules
            args = build_parser(_command_of(argv)).parse_args(argv)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the try, not at interpreter exit
        return code
    except FacescopeError as exc:
        print(f"facescope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facescope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """The reader of stdout went away (``facescope models | head -1``): point stdout at /dev/null so
    that the interpreter's final flush does not raise a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
