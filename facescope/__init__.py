"""facescope: SCRFD, RetinaFace, DSFD, SHF and ASFD face detectors with one data contract.

Example:
    >>> import facescope
    >>> detector = facescope.Detector()              # the embedded RetinaFace MobileNet-0.25 (MIT), no torch
    >>> faces = detector.detect("photo.jpg")        # Detections: boxes [N,4], scores [N], landmarks [N,5,2]
    >>> for face in faces:                          # Face: box [4], score, landmarks [5,2]
    ...     print(face.box, face.score)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facescope._lazy import lazy_getattr
from facescope.errors import FacescopeError

if TYPE_CHECKING:  # pragma: no cover
    from facescope.inference import Detector, draw_detections
    from facescope.inference.align import align
    from facescope.models import create_model, list_models
    from facescope.structures import Detections, Face, FaceTargets
    from facescope.tracking import FaceTracker, TrackerConfig

__version__ = "0.1.0"

# Imported on first use, so that torch-free parts (the evaluators, `facescope eval --predictions`)
# start without loading torch.
_LAZY_ATTRIBUTES = {
    "Detections": "facescope.structures",
    "Face": "facescope.structures",
    "FaceTargets": "facescope.structures",
    "Detector": "facescope.inference",
    "draw_detections": "facescope.inference",
    "align": "facescope.inference.align",
    "create_model": "facescope.models",
    "list_models": "facescope.models",
    "FaceTracker": "facescope.tracking",
    "TrackerConfig": "facescope.tracking",
}


__getattr__ = lazy_getattr("facescope", _LAZY_ATTRIBUTES, globals())


__all__ = [
    "Detections",
    "Detector",
    "Face",
    "FaceTargets",
    "FaceTracker",
    "FacescopeError",
    "TrackerConfig",
    "align",
    "create_model",
    "draw_detections",
    "list_models",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_ATTRIBUTES))
