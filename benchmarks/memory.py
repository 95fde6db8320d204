"""Process memory from Linux ``/proc`` (standard library only: peers' interpreters import it too)."""

from __future__ import annotations

import resource


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size of process ``pid`` (default: this one), MiB."""
    with open(f"/proc/{pid}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Peak RSS of this process image (``VmHWM``; unlike ``ru_maxrss`` it does not inherit the
    parent's peak across fork + exec), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
