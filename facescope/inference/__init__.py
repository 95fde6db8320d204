"""Inference: reading images and videos, presets, backends, the Detector (and its video tracking loop) and visualisation.

Attributes are imported on first use, so that importing one module of the package (e.g. the video-source
test of ``facescope detect``) does not import the detector and the drawing code with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facescope._lazy import lazy_getattr

if TYPE_CHECKING:  # pragma: no cover
    from facescope.inference.detector import Detector
    from facescope.inference.visualize import draw_detections

_LAZY_ATTRIBUTES = {
    "Detector": "facescope.inference.detector",
    "draw_detections": "facescope.inference.visualize",
}

__getattr__ = lazy_getattr("facescope.inference", _LAZY_ATTRIBUTES, globals())

__all__ = ["Detector", "draw_detections"]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_ATTRIBUTES))
