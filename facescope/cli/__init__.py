"""``facescope`` command line: a thin layer over the Python API.

Each sub-command lives in its own module exposing ``register(subparsers)``; the parser it adds
sets ``func`` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
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
"""


def build_parser() -> argparse.ArgumentParser:
    from facescope.cli import detect, evaluate, export, models, quantize, train

    parser = argparse.ArgumentParser(
        prog="facescope",
        description="Face detection with SCRFD, RetinaFace, DSFD and SHF (ASFD is planned).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in (detect, evaluate, train, export, quantize, models):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facescope`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FacescopeError as exc:
        print(f"facescope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facescope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
