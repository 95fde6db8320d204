"""One image of ``facescope detect``: read, detect, draw, crop (shared by the single-image and folder runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def detect_one(
    detector: Any,
    path: Path,
    out: Path | None,
    show_scores: bool,
    crops: tuple[Path, int] | None = None,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    """Detect faces in the image at ``path``; write its annotated copy to ``out`` and its aligned
    crops as ``<prefix>_<i>.png`` (``crops = (prefix, size)``), each file atomically.

    Returns:
        ``{"width", "height", "faces": [...]}`` (the :meth:`~facescope.structures.Detections.to_dict` contract).
    """
    from facescope.inference.image_io import read_image

    image = read_image(path, max_pixels)
    return finish_one(image, detector.detect(image, color_order="bgr"), out, show_scores, crops)


def finish_one(image: Any, detections: Any, out: Path | None, show_scores: bool, crops: tuple[Path, int] | None) -> dict[str, Any]:
    """Write one image's annotated copy and crops as asked (each file atomically); its JSON record."""
    if out is not None:  # the drawing code is imported only when there is something to draw
        from facescope.inference.visualize import draw_detections, write_image

        write_image(str(out), draw_detections(image, detections, show_scores=show_scores))
    if crops is not None:
        write_crops(image, detections, *crops)
    height, width = image.shape[:2]
    return {"width": width, "height": height, **detections.to_dict()}


def write_crops(image: Any, detections: Any, prefix: Path, size: int) -> None:
    """Aligned faces as ``<prefix>_<i>.png``, in the detector's (descending score) order."""
    from facescope.inference.align import align
    from facescope.inference.visualize import write_image

    for i, crop in enumerate(align(image, detections, size)):
        write_image(f"{prefix}_{i}.png", crop)


def crop_target(crops: str | None, crop_size: int, relative: Path) -> tuple[Path, int] | None:
    """``(CROPS/<relative without suffix>, size)``, or None without ``--crops``."""
    if not crops:
        return None
    return Path(crops) / relative.with_suffix(""), crop_size
