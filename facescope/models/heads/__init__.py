"""Detection heads."""

from facescope.models.heads.retinaface_head import BboxHead, ClassHead, LandmarkHead, SharedRetinaFaceHead
from facescope.models.heads.scrfd_head import SCRFDHead

__all__ = ["BboxHead", "ClassHead", "LandmarkHead", "SCRFDHead", "SharedRetinaFaceHead"]
