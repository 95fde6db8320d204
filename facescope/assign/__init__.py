"""Label assignment: priors and ground truth -> :class:`~facescope.assign.labels.Assignment`
(ATSS, max-IoU), with one label convention (:data:`POSITIVE`, :data:`NEGATIVE`, :data:`IGNORE`)."""

from facescope.assign.atss import ATSSAssigner, atss_assign
from facescope.assign.labels import IGNORE, NEGATIVE, POSITIVE, Assignment
from facescope.assign.max_iou import MaxIoUAssigner, assign_max_iou

__all__ = [
    "IGNORE",
    "NEGATIVE",
    "POSITIVE",
    "ATSSAssigner",
    "Assignment",
    "MaxIoUAssigner",
    "assign_max_iou",
    "atss_assign",
]
