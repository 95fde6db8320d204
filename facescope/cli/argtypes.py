"""argparse ``type=`` functions that range-check numeric options while the command line is parsed,
before any model is built or file read.

They wrap the checks of :mod:`facescope.inference.validate` (imported lazily, so building the
parser stays cheap), so the command line and the Python API refuse the same values with the same
words; argparse prints ``facescope CMD: error: argument --opt: <message>`` and exits with 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from facescope.errors import FacescopeError


def _wrap(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except FacescopeError as exc:  # "value must be ..." -> "must be ...": argparse names the option
        raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None


def _number(text: str, kind: type, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None


def probability(text: str) -> float:
    """A threshold in [0, 1] (score, NMS IoU)."""
    from facescope.inference.validate import check_probability

    value = _number(text, float, "a number in [0, 1]")
    return _wrap(lambda: check_probability("value", value))


def positive_int(text: str) -> int:
    """A whole number >= 1 (batch size, threads, crop size, iterations)."""
    from facescope.inference.validate import check_positive_int

    value = _number(text, int, "a whole number >= 1")
    return _wrap(lambda: check_positive_int("value", value))


def positive_float(text: str) -> float:
    """A finite number > 0 (tolerances, learning rates)."""
    value = _number(text, float, "a number > 0")
    if not (0.0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got '{text}'")
    return value


def _parse_size(text: str) -> int | tuple[int, int] | str:
    """``"640"`` -> 640, ``"1280x720"`` -> (1280, 720), ``"original"`` -> "original", ``"long:640"``
    -> "long:640" (checked by :func:`facescope.inference.validate.check_input_size`)."""
    cleaned = text.strip().lower()
    if cleaned == "original" or cleaned.startswith("long:"):
        return cleaned
    parts = cleaned.split("x")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if len(parts) == 2:
            return (int(parts[0]), int(parts[1]))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"invalid size '{text}': use 640, 1280x720 (width x height), original or long:640")


def input_size(text: str) -> int | tuple[int, int] | str:
    """``640`` (square), ``WIDTHxHEIGHT``, ``original`` or ``long:N`` (longer side to N, aspect kept,
    padded only to the stride), sides in [1, 16384]. The memory budget
    needs the model, so it is checked when the detector is built
    (:func:`facescope.inference.validate.validate_detector_options`)."""
    from facescope.inference.validate import check_input_size

    size = _parse_size(text)
    return _wrap(lambda: check_input_size(size, "size"))


def concrete_size(text: str) -> int | tuple[int, int]:
    """As :func:`input_size`, without ``original`` and ``long:N``."""
    size = input_size(text)
    if isinstance(size, str):
        raise argparse.ArgumentTypeError(f"a concrete size is needed here, such as 640 or 640x480, not '{size}'")
    return size


def size_hw(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (or one side for a square) -> ``(height, width)``, sides in [1, 16384]."""
    size = concrete_size(text)
    width, height = (size, size) if isinstance(size, int) else size
    return (height, width)


def pixel_count(text: str) -> int:
    """A pixel budget: a whole number (``250000000``) or with an M/G suffix (``250M``, powers of 1000)."""
    cleaned = text.strip().lower()
    factor = {"k": 10**3, "m": 10**6, "g": 10**9}.get(cleaned[-1:], 1)
    digits = cleaned[:-1] if factor > 1 else cleaned
    try:
        value = int(float(digits) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count such as 250000000 or 250M, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 pixel, got '{text}'")
    return value


def tta_protocol(text: str) -> str:
    """A registered test-time augmentation protocol name, or ``none``; an unknown name is refused
    with the closest known one (argparse exits with 2)."""
    from facescope.inference.tta import resolve_tta

    return _wrap(lambda: (resolve_tta(text), text)[1])


def model_arg(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--model-arg`` (the value is read with the builder's type hints later)."""
    from facescope.models.options import parse_model_arg

    return _wrap(lambda: parse_model_arg(text))


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (waits, delays)."""
    value = _number(text, float, "a number >= 0")
    if not (0.0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got '{text}'")
    return value


def byte_count(text: str) -> int:
    """A size in bytes: ``20000000``, ``20M``, ``1.5G`` (K/M/G/T are powers of 1024)."""
    from facescope.inference.validate import parse_byte_count

    return _wrap(lambda: parse_byte_count(text, "value"))


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    from facescope.inference.validate import check_positive_int

    value = _number(text, int, "a port number in 1..65535")
    return _wrap(lambda: check_positive_int("value", value, 65535))
