"""Periodic validation on WIDER FACE during training, through :mod:`facescope.eval`."""

from __future__ import annotations

from pathlib import Path

from facescope.models.base import DenseFaceDetector


def evaluate_widerface(
    model: DenseFaceDetector, images: str, ground_truth: str, preset: str, out_dir: Path, epoch: int
) -> dict[str, float]:
    """AP (easy / medium / hard) of ``model`` on a WIDER-layout image folder.

    Runs on every rank (images are sharded when a process group exists; every rank gets the
    result). Predictions are kept in ``<out_dir>/val_epoch_<epoch>``. The model is left in eval
    mode; the training loop switches it back at the start of the next epoch.
    """
    from facescope.eval import evaluate_detector_on_widerface
    from facescope.inference.detector import Detector

    detector = Detector(model, preset=preset, device=next(model.parameters()).device)
    result = evaluate_detector_on_widerface(
        detector, images, ground_truth, out_dir / f"val_epoch_{epoch}", progress=False, name=f"epoch {epoch}"
    )
    metrics = {f"ap_{subset}": float(value) for subset, value in result.ap.items()}
    metrics["full_val"] = float(result.is_full)
    return metrics
