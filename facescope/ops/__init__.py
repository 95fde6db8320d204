"""Array functions: box geometry, NMS, prior (anchor) grids and box/landmark coders.

``anchors`` and ``coders`` work on numpy arrays and torch tensors alike and import without torch;
``boxes`` (torchvision NMS, IoU) needs torch. Attributes are imported on first use so that the
torch-free modules stay torch-free.
"""

from __future__ import annotations

from facescope._lazy import lazy_getattr

_LAZY_ATTRIBUTES = {
    "AnchorGenerator": "facescope.ops.anchors",
    "Priors": "facescope.ops.anchors",
    "anchor_shape": "facescope.ops.anchors",
    "BoxCoder": "facescope.ops.coders",
    "DeltaCoder": "facescope.ops.coders",
    "DistanceCoder": "facescope.ops.coders",
    "box_iou": "facescope.ops.boxes",
    "clip_boxes": "facescope.ops.boxes",
    "nms": "facescope.ops.boxes",
}


__getattr__ = lazy_getattr("facescope.ops", _LAZY_ATTRIBUTES)


__all__ = sorted(_LAZY_ATTRIBUTES)
