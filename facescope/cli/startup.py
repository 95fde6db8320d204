"""Start-up of a ``facescope`` process without needless passes of the cyclic garbage collector.

Start-up - importing the command's modules, numpy, OpenCV and onnxruntime, loading the model
catalogue, building the detector - creates some 40,000 objects that live as long as the process and
almost no garbage. CPython's collector would still scan them about 50 times while they are created,
and all of them once more at exit: about a tenth of the CPU time of a one-photo ``facescope detect``
(benchmarks/README.md, "Cold start"). When the command line owns the process (the ``facescope``
script, ``python -m facescope``: :func:`own_process`), each start-up phase runs with the collector
off, and its objects are then frozen (:func:`gc.freeze`: moved to a generation that no collection
scans, the pattern its documentation gives for forking servers) before the collector is turned
back on: garbage made later, e.g. while a folder or a video runs, is collected as usual. Called
in-process (``main(argv)``, as the tests do), nothing changes: freezing would keep another
program's uncollected garbage for good.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_owns_process = False


def own_process() -> None:
    """Mark this process as the command line's own (its entry point calls this once)."""
    global _owns_process
    _owns_process = True


@contextmanager
def startup_phase() -> Iterator[None]:
    """Run the block with the collector off and freeze what it created (only in a process the command
    line owns, see the module docstring); the collector is back as it was afterwards, also on errors."""
    if not _owns_process or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
