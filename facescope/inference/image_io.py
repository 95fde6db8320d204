"""Reading images from paths, numpy arrays and PIL images into one form: BGR uint8 ``H x W x 3``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import cv2
import numpy as np

from facescope.errors import ImageReadError

ImageLike = Union[str, Path, np.ndarray, Any]  # Any: PIL.Image.Image (PIL is optional at import time)
ColorOrder = Literal["bgr", "rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR uint8; raise :class:`ImageReadError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"cannot read image {path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"cannot read image {path}: the file is empty")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"cannot read image {path}: not a decodable image (corrupt or unsupported format)")
    return image


def to_bgr(image: ImageLike, color_order: ColorOrder | None = None) -> np.ndarray:
    """Bring any supported image to a contiguous BGR uint8 ``H x W x 3`` array.

    Args:
        image: a path, a numpy array (``H x W``, ``H x W x 1``, ``H x W x 3`` or ``H x W x 4``) or a PIL image.
        color_order: channel order of a 3/4-channel numpy array; required for such arrays, because
            OpenCV gives BGR and most other libraries RGB.
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, np.ndarray):
        return _array_to_bgr(image, color_order)
    if _is_pil(image):
        rgb = np.asarray(image.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1])
    raise ImageReadError(f"unsupported image type {type(image).__name__}; pass a path, a numpy array or a PIL image")


def _is_pil(image: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(image, Image.Image)


def _array_to_bgr(array: np.ndarray, color_order: ColorOrder | None) -> np.ndarray:
    if array.size == 0:
        raise ImageReadError(f"empty image array of shape {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max() <= 1.0:
            raise ImageReadError("float image arrays must hold 0..255 pixel values, not 0..1; multiply by 255 first")
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return cv2.cvtColor(array.reshape(array.shape[0], array.shape[1]), cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageReadError(f"image arrays must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if color_order not in ("bgr", "rgb"):
        raise ImageReadError("a colour numpy image needs color_order='bgr' (OpenCV) or 'rgb' (PIL, matplotlib)")
    array = array[:, :, :3]
    if color_order == "rgb":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def list_images(directory: str | Path) -> list[Path]:
    """Image files below ``directory`` (recursive), sorted."""
    directory = Path(directory)
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
