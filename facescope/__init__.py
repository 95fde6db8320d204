"""facescope: SCRFD, RetinaFace, DSFD, ASFD and SHF face detectors in one PyTorch toolkit.

Example:
    >>> import facescope
    >>> detector = facescope.Detector("scrfd_2.5g_kps")
    >>> faces = detector.detect("photo.jpg")        # Detections: boxes [N,4], scores [N], landmarks [N,5,2]
"""

from facescope.errors import FacescopeError
from facescope.inference import Detector, draw_detections
from facescope.inference.align import align
from facescope.models import create_model, list_models
from facescope.structures import Detections, FaceTargets

__version__ = "0.1.0"

__all__ = [
    "Detections",
    "Detector",
    "FaceTargets",
    "FacescopeError",
    "align",
    "create_model",
    "draw_detections",
    "list_models",
]
