"""Mini-benchmark AP on the real WIDER FACE val images in shared data, through ``facescope.eval``.

The benchmark writes official-format prediction folders; this module scores them with the
project's WIDER evaluator when it is importable (``facescope.eval``), evaluating only the images
present (mini-benchmark mode: never comparable with full-val numbers), and otherwise reports
``"n/a (evaluator not available)"``.
"""

from __future__ import annotations

from pathlib import Path

NOT_AVAILABLE = "n/a (evaluator not available)"


def mini_benchmark_ap(predictions_dir: Path, gt_dir: Path, name: str = "") -> dict[str, float] | str:
    """``{"easy", "medium", "hard"} -> AP`` of a prediction folder, or a one-line reason why not.

    Calls ``facescope.eval.evaluate_predictions_on_widerface(predictions_dir, gt_dir,
    missing="skip", challenge=False)`` (official protocol restricted to the predicted images).
    """
    try:
        from facescope.eval import evaluate_predictions_on_widerface
    except ImportError:
        return NOT_AVAILABLE
    if not gt_dir.exists():
        return f"n/a (no ground truth at {gt_dir})"
    result = evaluate_predictions_on_widerface(predictions_dir, gt_dir, missing="skip", challenge=False, name=name)
    return {subset: float(result.ap[subset]) for subset in ("easy", "medium", "hard")}
