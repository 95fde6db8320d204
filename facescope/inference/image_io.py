"""Reading images from paths, numpy arrays and PIL images into one form: BGR uint8 ``H x W x 3``.

Pixel budget. Before an image file is decoded, its width and height are read from its header
(:func:`image_size_from_header`: JPEG, PNG, BMP, GIF, WebP, TIFF, PNM, parsed here without any
image library) and a file with more than :func:`max_image_pixels` pixels is refused with
:class:`ImageTooLargeError`: a small file can decode to gigabytes (a 2.6 MB PNG of 30000 x 30000
pixels decodes to 2.7 GB of BGR). The budget is ``max_pixels=`` where a function takes it, else
``$FACESCOPE_MAX_IMAGE_PIXELS``, else 250 million pixels (above any real photo; 100+ megapixel
panoramas included). Other formats OpenCV reads (JPEG 2000, OpenEXR, ...) are not checked here;
OpenCV's own limit (2^30 pixels) applies to them.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Literal, Union

import cv2
import numpy as np

from facescope.errors import FacescopeError, ImageReadError

ImageLike = Union[str, Path, np.ndarray, Any]  # Any: PIL.Image.Image (PIL is optional at import time)
ColorOrder = Literal["bgr", "rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

DEFAULT_MAX_IMAGE_PIXELS = 250_000_000
MAX_IMAGE_PIXELS_ENV = "FACESCOPE_MAX_IMAGE_PIXELS"


class ImageTooLargeError(ImageReadError):
    """An image's header declares more pixels than the pixel budget allows."""


def max_image_pixels(max_pixels: int | None = None) -> int:
    """The pixel budget: ``max_pixels`` if given, else ``$FACESCOPE_MAX_IMAGE_PIXELS``, else 250 million."""
    if max_pixels is None:
        text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_IMAGE_PIXELS
        try:
            max_pixels = int(float(text))
        except ValueError:
            raise FacescopeError(f"{MAX_IMAGE_PIXELS_ENV} must be a pixel count such as 250000000, got {text!r}") from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise FacescopeError(f"the image pixel budget must be a whole number >= 1, got {max_pixels!r}")
    return max_pixels


def check_image_pixels(width: int, height: int, max_pixels: int | None, source: object) -> None:
    """Raise :class:`ImageTooLargeError` when ``width x height`` exceeds the pixel budget."""
    budget = max_image_pixels(max_pixels)
    if width * height > budget:
        raise ImageTooLargeError(
            f"cannot read image {source}: {width}x{height} pixels ({width * height / 1e6:.1f} MP) exceed the image "
            f"pixel budget of {budget:,} pixels; raise it with --max-pixels or {MAX_IMAGE_PIXELS_ENV}"
        )


def check_image_file(path: str | Path, max_pixels: int | None = None) -> None:
    """Refuse an image file whose header declares more pixels than the budget, reading only its
    first bytes (a missing or unreadable file is left to :func:`read_image` to report)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
            if head[:2] == b"\xff\xd8" or head[:4] in (b"II*\x00", b"MM\x00*"):
                head += handle.read(_HEADER_SCAN_BYTES - len(head))
    except OSError:
        return
    size = image_size_from_header(head)
    if size is not None:
        check_image_pixels(*size, max_pixels, path)


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to BGR uint8; raise :class:`ImageReadError` naming the file otherwise.

    Files whose header declares more than the pixel budget (``max_pixels``, see
    :func:`max_image_pixels`) are refused before decoding (:class:`ImageTooLargeError`)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"cannot read image {path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"cannot read image {path}: the file is empty")
    return decode_image(data, max_pixels, path)


def decode_image(
    data: bytes | bytearray | memoryview | np.ndarray, max_pixels: int | None = None, source: object = "in memory"
) -> np.ndarray:
    """Decode an encoded image held in memory (the bytes of a JPEG, PNG, ... file) to BGR uint8.

    The header is checked against the pixel budget (``max_pixels``, see :func:`max_image_pixels`)
    before any pixel is decoded (:class:`ImageTooLargeError`); empty, truncated or undecodable data
    raises :class:`ImageReadError`. ``source`` names the image in messages."""
    buffer = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageReadError(f"cannot read image {source}: no bytes")
    size = image_size_from_header(buffer[: _HEADER_SCAN_BYTES if _is_tiff_or_jpeg(buffer) else 256].tobytes())
    if size is not None:
        check_image_pixels(*size, max_pixels, source)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"cannot read image {source}: not a decodable image (corrupt, truncated or unsupported format)")
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
        check_image_pixels(*image.size, None, f"{type(image).__name__} of size {image.size[0]}x{image.size[1]}")
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


# JPEG frame headers follow the APPn segments (EXIF thumbnails, ICC profiles: up to ~64 KiB each);
# TIFF IFDs may sit anywhere. Scanning the first few MiB finds them in any real file.
_HEADER_SCAN_BYTES = 16 * 1024 * 1024
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC


def _is_tiff_or_jpeg(data: np.ndarray) -> bool:
    head = data[:4].tobytes()
    return head[:2] == b"\xff\xd8" or head in (b"II*\x00", b"MM\x00*")


def image_size_from_header(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` declared by an image file's header, without decoding any pixel.

    Understands JPEG (SOF markers), PNG (IHDR), BMP, GIF, WebP (VP8, VP8L, VP8X), TIFF (first IFD)
    and PNM; returns None for other formats or a header too short or malformed to read (the decoder
    then reports the file)."""
    try:
        for parser in (_png_size, _jpeg_size, _gif_size, _bmp_size, _webp_size, _tiff_size, _pnm_size):
            size = parser(data)
            if size is not None:
                return size if size[0] > 0 and size[1] > 0 else None
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _gif_size(data: bytes) -> tuple[int, int] | None:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    return struct.unpack("<HH", data[6:10])


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"BM":
        return None
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # negative height = rows stored top-down


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: frame tag (3 bytes), start code 9d 01 2a, 14-bit sides
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14 bits width - 1, 14 bits height - 1
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: flags (4 bytes), 24-bit canvas width - 1 and height - 1
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker == 0xD9 or marker == 0xDA:  # end of image / start of scan before any frame header
            return None
        if marker in _JPEG_SOF_MARKERS:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    sides: dict[int, int] = {}
    for k in range(count):
        entry = data[offset + 2 + 12 * k : offset + 14 + 12 * k]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            sides[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return (sides[256], sides[257]) if len(sides) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 3 or data[:1] != b"P" or data[1:2] not in b"123456" or data[2:3] not in b" \t\r\n#":
        return None
    text = re.sub(rb"#[^\n]*", b" ", data[2:256])  # comments may sit between the tokens
    tokens = text.split()
    return (int(tokens[0]), int(tokens[1])) if len(tokens) >= 2 else None
