"""Periodic validation on WIDER FACE during training (through the evaluation package)."""

from __future__ import annotations

from pathlib import Path

from facescope.models.base import DenseFaceDetector


def evaluate_widerface(
    model: DenseFaceDetector, images: str, ground_truth: str, preset: str, out_dir: Path, epoch: int
) -> dict[str, float] | None:
    """AP (easy / medium / hard) of ``model`` on a WIDER-layout folder; None on non-main ranks."""
    raise NotImplementedError("WIDER FACE validation arrives with facescope.eval")
