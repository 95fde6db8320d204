"""Inference: reading images and videos, presets, backends, the Detector (and its video tracking loop) and visualisation."""

from facescope.inference.detector import Detector
from facescope.inference.visualize import draw_detections

__all__ = ["Detector", "draw_detections"]
