"""Range checks of inference options, shared by :class:`~facescope.inference.detector.Detector` and
the command line, run before any work is done (no weights loaded, nothing allocated).

Every check raises :class:`InvalidOptionError` (a :class:`~facescope.errors.FacescopeError` and a
``ValueError``) with a one-line message naming the option and the value at fault; the CLI's
argparse types (:mod:`facescope.cli.argtypes`) wrap the same functions, so the API and the CLI
refuse the same values with the same words.

Memory budget. An input size is refused when the estimated memory of one forward pass,
``batch * H * W * bytes_per_pixel``, exceeds the budget: ``FACESCOPE_MEMORY_BUDGET`` (bytes, or
with a K/M/G/T suffix, powers of 1024) or :data:`DEFAULT_MEMORY_BUDGET` (8 GiB). ``H`` and ``W``
are the network input sides rounded up to a multiple of 32; ``bytes_per_pixel`` is the measured
peak per input pixel (input tensor and activations) that the model's registry entry declares
(``ModelEntry.bytes_per_pixel``), or :data:`DEFAULT_BYTES_PER_PIXEL` where no entry is known (a model
built outside the registry, :func:`~facescope.inference.preprocess.keep_original` without a model).

This module imports neither torch nor onnxruntime at import time.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from facescope.errors import FacescopeError
from facescope.models.spec import LONG_PREFIX, parse_long_side

MAX_INPUT_SIDE = 16384  # a network input side beyond 16K pixels is a typo, not a photo
GIB = 1024**3
DEFAULT_MEMORY_BUDGET = 8 * GIB
MEMORY_BUDGET_ENV = "FACESCOPE_MEMORY_BUDGET"
# Where no registry entry is known (a model built outside the registry, `keep_original` called without a
# model): the figure once measured for SCRFD-34GF plus margin. The DSFD, SHF VGG-16 and paper RetinaFace
# networks need two to five times that; their entries say so.
DEFAULT_BYTES_PER_PIXEL = 300
SIZE_DIVISOR = 32

_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class InvalidOptionError(FacescopeError, ValueError):
    """An option (threshold, size, batch size, device, ...) is out of range or unavailable."""


def check_probability(name: str, value: Any) -> float:
    """A threshold in ``[0, 1]`` (score, NMS IoU); returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionError(f"{name} must be a number in [0, 1], got {value!r}")
    number = float(value)
    if not (0.0 <= number <= 1.0):  # also refuses NaN
        raise InvalidOptionError(f"{name} must be in [0, 1], got {value!r}")
    return number


def check_positive_int(name: str, value: Any, maximum: int | None = None) -> int:
    """An integer ``>= 1`` (and ``<= maximum`` when given); returns it."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidOptionError(f"{name} must be a whole number >= 1, got {value!r}")
    if value < 1:
        raise InvalidOptionError(f"{name} must be >= 1, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidOptionError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_input_size(value: Any, name: str = "input_size") -> int | tuple[int, int] | str | None:
    """``None``, ``"original"``, ``"long:N"`` (longer side to ``N``), a side ``S`` (square ``S x S``)
    or ``(width, height)``, each side in ``[1, MAX_INPUT_SIDE]``. Returns the value with sides as
    ints (tuples stay tuples, ``"long:N"`` comes back normalised)."""
    if value is None or value == "original":
        return value
    if isinstance(value, str):
        try:
            long_side = parse_long_side(value)
        except ValueError as exc:
            raise InvalidOptionError(f"{name}: {exc}") from None
        if long_side is None:
            raise InvalidOptionError(
                f"{name} must be a side such as 640, a (width, height) pair, 'original' or 'long:N', got {value!r}"
            )
        return f"{LONG_PREFIX}{check_positive_int(f'{name} long side', long_side, MAX_INPUT_SIDE)}"
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidOptionError(f"{name} must be (width, height), got {value!r}")
        width, height = (check_positive_int(f"{name} {axis}", v, MAX_INPUT_SIDE) for axis, v in zip(("width", "height"), value))
        return (width, height)
    return check_positive_int(name, value, MAX_INPUT_SIDE)


def parse_byte_count(text: str, name: str) -> int:
    """``"8589934592"``, ``"8G"``, ``"512M"``, ``"1.5g"`` -> bytes (K/M/G/T are powers of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if match is None:
        raise InvalidOptionError(f"{name} must be a byte count such as 8G, 512M or 1073741824, got {text!r}")
    count = int(float(match.group(1)) * _SIZE_SUFFIXES[match.group(2).lower()])
    if count < 1:
        raise InvalidOptionError(f"{name} must be positive, got {text!r}")
    return count


def memory_budget(budget: int | None = None) -> int:
    """The budget in bytes: ``budget`` if given, else ``$FACESCOPE_MEMORY_BUDGET``, else 8 GiB."""
    if budget is not None:
        return check_positive_int("memory budget", budget)
    text = os.environ.get(MEMORY_BUDGET_ENV)
    return parse_byte_count(text, MEMORY_BUDGET_ENV) if text else DEFAULT_MEMORY_BUDGET


def bytes_per_pixel(model: Any = None) -> int:
    """Estimated peak bytes per network input pixel of ``model``: a registry name's declared
    ``ModelEntry.bytes_per_pixel``; anything else gets :data:`DEFAULT_BYTES_PER_PIXEL`."""
    from facescope.errors import UnknownModelError
    from facescope.models.registry import get_model_entry

    if isinstance(model, str):
        try:  # a direct lookup: this runs for every original-size image
            return get_model_entry(model).bytes_per_pixel
        except UnknownModelError:
            pass
    return DEFAULT_BYTES_PER_PIXEL


def estimate_inference_bytes(input_hw: tuple[int, int], batch: int = 1, model: Any = None) -> int:
    """Estimated peak bytes of one forward pass of ``model`` on ``batch`` inputs of
    ``input_hw = (H, W)`` (sides rounded up to a multiple of 32): ``batch * H * W * bytes_per_pixel``."""
    height, width = (math.ceil(side / SIZE_DIVISOR) * SIZE_DIVISOR for side in input_hw)
    return batch * height * width * bytes_per_pixel(model)


def check_input_memory(
    input_hw: tuple[int, int], batch: int = 1, model: Any = None, budget: int | None = None, what: str = "input size"
) -> None:
    """Refuse an input whose estimated forward-pass memory exceeds the budget, before allocating it."""
    limit = memory_budget(budget)
    needed = estimate_inference_bytes(input_hw, batch, model)
    if needed > limit:
        height, width = input_hw
        batch_text = f" x batch {batch}" if batch > 1 else ""
        raise InvalidOptionError(
            f"{what} {width}x{height}{batch_text} needs an estimated {_gib(needed)} for one forward pass "
            f"({bytes_per_pixel(model)} bytes per input pixel), over the memory budget of {_gib(limit)}; "
            f"use a smaller size or raise {MEMORY_BUDGET_ENV}"
        )


def _gib(count: int) -> str:
    return f"{count / GIB:.1f} GiB"


def parse_device(device: Any) -> str:
    """Normalise ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device`` to text;
    refuse anything else."""
    text = str(device).strip().lower()
    if not re.fullmatch(r"cpu|mps|cuda(:[0-9]+)?", text):
        raise InvalidOptionError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps")
    return text


def available_devices(backend: str | None = None) -> list[str]:
    """Devices this machine can run: ``["cpu", "cuda:0", ...]``.

    ``backend="torch"``: what PyTorch sees (``cuda:N`` per GPU, ``mps``). ``"onnxruntime"``:
    ``"cuda"`` when onnxruntime has its CUDA execution provider (a CPU-only onnxruntime cannot
    use a GPU even where PyTorch sees one). Any other value (a backend chosen later from the
    weights): either, PyTorch's only if torch is already loaded (it is never imported just to answer)."""
    devices = ["cpu"]
    if backend != "torch":
        try:
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                devices.append("cuda")
        except ImportError:  # pragma: no cover - onnxruntime is a dependency
            pass
        if backend == "onnxruntime" or "torch" not in sys.modules:
            return devices
    try:
        import torch
    except ImportError:  # pragma: no cover - a torch-free install asked for the torch backend
        return devices
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return list(dict.fromkeys(devices))


def check_device(device: Any, backend: str | None = None) -> str:
    """Refuse a device this machine does not have, naming those it has (``backend`` as in
    :func:`available_devices`); returns the device as normalised text."""
    text = parse_device(device)
    if text == "cpu":
        return text
    available = available_devices(backend)
    wanted = "cuda:0" if text == "cuda" else text
    # onnxruntime's provider list cannot say how many GPUs there are: with it any cuda:N passes here
    if wanted in available or (text.startswith("cuda") and "cuda" in available):
        return text
    raise InvalidOptionError(f"device '{text}' is not available here; available: {', '.join(available)}")


def _letterbox_hw(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    width, height = input_size
    return (int(height), int(width))


def validate_detector_options(
    *,
    model: Any = None,
    score_thresh: Any = None,
    nms_thresh: Any = None,
    input_size: Any = None,
    batch_size: Any = 1,
    threads: Any = None,
    device: Any = "cpu",
    backend: str | None = None,
) -> None:
    """Check every user-facing option of :class:`~facescope.inference.detector.Detector` before
    any weights are loaded; raise :class:`InvalidOptionError` naming the first bad one.

    A concrete ``input_size`` is checked against the memory budget for one image per forward
    pass (what :meth:`~facescope.inference.detector.Detector.detect` and the CLI run;
    ``detect_batch`` needs up to ``batch_size`` times as much); ``"original"`` sizes are checked
    per image when images are resized (:func:`check_input_memory`)."""
    if score_thresh is not None:
        check_probability("score_thresh", score_thresh)
    if nms_thresh is not None:
        check_probability("nms_thresh", nms_thresh)
    check_positive_int("batch_size", batch_size)
    if threads is not None:
        check_positive_int("threads", threads)
    size = check_input_size(input_size)
    if isinstance(size, str) and size != "original":  # long:N: at most an N x N input
        long_side = int(size[len(LONG_PREFIX) :])
        check_input_memory((long_side, long_side), 1, model)
    elif size is not None and size != "original":
        check_input_memory(_letterbox_hw(size), 1, model)  # type: ignore[arg-type]
    check_device(device, backend)
