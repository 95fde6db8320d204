"""Loss normalisers that are averaged across data-parallel ranks (from the one distributed module)."""

from __future__ import annotations

from facescope.distributed import mean_across_ranks

__all__ = ["mean_across_ranks"]
