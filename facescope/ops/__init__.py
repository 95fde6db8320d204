"""Pure tensor functions: box geometry, NMS, prior (anchor) grids and box/landmark coders."""

from facescope.ops.anchors import AnchorGenerator, Priors
from facescope.ops.boxes import box_iou, clip_boxes, nms
from facescope.ops.coders import DeltaCoder, DistanceCoder

__all__ = ["AnchorGenerator", "Priors", "box_iou", "clip_boxes", "nms", "DeltaCoder", "DistanceCoder"]
