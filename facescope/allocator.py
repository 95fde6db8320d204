"""Keep freed CPU memory for reuse across forward passes (glibc malloc tuning).

A detector allocates the same large buffers on every frame: the normalised input (640x640x3 float32
= 4.7 MiB) and every activation map. With glibc's default settings many of them come from fresh
``mmap`` regions or from heap memory that was just trimmed back to the OS, so each frame pays page
faults and zero-filling for megabytes of memory. Measured on the 2-core development machine, 1
thread: SCRFD-500M-kps eager PyTorch at VGA 49 -> 36 ms per frame, SCRFD-2.5G-kps 124 -> 96 ms,
RetinaFace-MobileNet0.25 at HD 237 -> 190 ms; the insightface onnxruntime pipeline 31 -> 25 ms;
peak RSS +2%.

:func:`tune_cpu_allocator` sets two process-wide glibc parameters once: large blocks come from the
heap up to :data:`MMAP_THRESHOLD_BYTES` (instead of a fresh ``mmap`` each), and up to
:data:`TRIM_THRESHOLD_BYTES` of free memory at the heap top is kept instead of being returned to
the OS. Memory stays bounded (the retained part is at most the trim threshold above the working
set), which is what every serving allocator (jemalloc, tcmalloc, onnxruntime's arena) does anyway.

:class:`~facescope.inference.Detector` and the CPU trainer call it. It does nothing on other C
libraries (musl, macOS, Windows) and when ``FACESCOPE_MALLOC_TUNING=0`` is set in the environment.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ENV_SWITCH = "FACESCOPE_MALLOC_TUNING"
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's documented maximum for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 256 * 2**20
_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3

_applied: bool | None = None  # None: not tried yet in this process


def tune_cpu_allocator() -> bool:
    """Apply the glibc settings of this module once per process.

    Returns:
        True when the settings are in effect (now or from an earlier call), False when they were
        not applied (not glibc, disabled by ``FACESCOPE_MALLOC_TUNING=0``, or ``mallopt`` refused).
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        _debug("glibc malloc tuning disabled by %s", ENV_SWITCH)
        return False
    if platform.system() != "Linux" or not _is_glibc():
        return False
    try:
        # the process's own symbols include the C library's: no `ldconfig` subprocess (ctypes.util.find_library)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when it rejects the value
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    _debug("glibc malloc tuning %s", "applied" if applied else "refused by mallopt")
    return applied


def _debug(message: str, *args: object) -> None:
    """A debug record of this module's logger. While nothing has imported :mod:`logging`, no handler or
    level can have been set up and the record would be dropped: it is skipped without importing
    logging, which a cold ``facescope detect`` does not otherwise need."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(__name__).debug(message, *args)


def _is_glibc() -> bool:
    """The running C library is glibc (``os.confstr``: no scan of the interpreter binary)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False
