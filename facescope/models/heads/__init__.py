"""Detection heads."""

from facescope.models.heads.scrfd_head import SCRFDHead

__all__ = ["SCRFDHead"]
