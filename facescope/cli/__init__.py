"""``facescope`` command line: a thin layer over the Python API.

Each sub-command lives in its own module exposing ``register(subparsers)``; the parser it adds
sets ``func`` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    from facescope.cli import detect, evaluate, export, models, quantize, search, serve, train

    parser = ShortErrorParser(
        prog="facescope",
        description="Face detection with SCRFD, RetinaFace, DSFD and SHF (ASFD is planned).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in (detect, evaluate, train, export, quantize, models, serve, search):
        module.register(subparsers)
    return parser


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head -1` reports for the writer, without a traceback


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facescope`` script; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
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
