"""Inference: reading images, presets, backends, the Detector and visualisation."""

from facescope.inference.detector import Detector
from facescope.inference.visualize import draw_detections

__all__ = ["Detector", "draw_detections"]
