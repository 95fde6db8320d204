"""Face alignment: warp faces so their 5 landmarks land on the ArcFace template.

The template is the one used by insightface's recognition models for 112 x 112 crops (left eye,
right eye, nose tip, left and right mouth corners); other sizes scale it by ``size / 112``. The
transform is the least-squares similarity (rotation, uniform scale, translation) of Umeyama.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

import cv2
import numpy as np

from facescope.errors import FacescopeError
from facescope.inference.image_io import read_image
from facescope.ops.similarity import umeyama_similarity
from facescope.structures import Detections, to_numpy

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def arcface_template(size: int = 112) -> np.ndarray:
    """``[5, 2]`` target landmark positions for a ``size x size`` crop."""
    if size <= 0:
        raise FacescopeError(f"crop size must be positive, got {size}")
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def alignment_matrices(landmarks: np.ndarray | Any | Detections, size: int = 112) -> np.ndarray:
    """``[N, 2, 3]`` affine matrices mapping image pixels to aligned-crop pixels."""
    points = _landmark_array(landmarks)
    template = arcface_template(size)
    return np.stack([umeyama_similarity(face, template) for face in points]) if len(points) else np.zeros((0, 2, 3))


def align(
    image: str | Path | np.ndarray,
    landmarks: np.ndarray | Any | Detections,
    size: int = 112,
) -> np.ndarray:
    """Crop and align faces to the ArcFace template.

    Args:
        image: a path (read as BGR) or an ``H x W`` / ``H x W x C`` array (warped as it is, so
            an RGB array gives RGB crops).
        landmarks: ``[5, 2]`` for one face, ``[N, 5, 2]`` for several, or :class:`Detections`.
        size: side of the square crops.

    Returns:
        ``[size, size(, C)]`` for a single ``[5, 2]`` face, else ``[N, size, size(, C)]``, same dtype
        as the image.

    Example:
        >>> faces = facescope.Detector("retinaface_mnet025").detect("group.jpg")
        >>> crops = facescope.align("group.jpg", faces)          # [N, 112, 112, 3] BGR uint8
    """
    pixels = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if pixels.ndim not in (2, 3) or pixels.size == 0:
        raise FacescopeError(f"align needs an H x W or H x W x C image, got shape {pixels.shape}")
    single = not isinstance(landmarks, Detections) and np.asarray(to_numpy(landmarks)).ndim == 2
    matrices = alignment_matrices(landmarks, size)
    crops = [cv2.warpAffine(pixels, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0) for m in matrices]
    if single:
        return crops[0]
    return np.stack(crops) if crops else np.zeros((0, size, size) + pixels.shape[2:], dtype=pixels.dtype)


def _landmark_array(landmarks: np.ndarray | Any | Detections) -> np.ndarray:
    if isinstance(landmarks, Detections):
        if landmarks.landmarks is None:
            raise FacescopeError("these detections have no landmarks; align needs a model that predicts 5 points")
        landmarks = landmarks.landmarks
    points = to_numpy(landmarks).astype(np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (5, 2):
        raise FacescopeError(f"landmarks must be [5, 2] or [N, 5, 2], got shape {list(points.shape)}")
    return points
