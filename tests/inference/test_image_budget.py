"""Image sizes read from file headers, and the pixel budget that refuses huge images before decoding."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facescope.inference import image_io
from facescope.inference.image_io import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    check_image_file,
    image_size_from_header,
    max_image_pixels,
    read_image,
    to_bgr,
)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def write_huge_png(path: Path, width: int, height: int) -> None:
    """A valid 1-bit greyscale PNG of ``width x height`` zeros, compressed row by row: a ~100 KB
    file that decodes to ``width * height * 3`` bytes of BGR. Building it holds one row in memory."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none" + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    data = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))


@pytest.fixture(autouse=True)
def no_budget_env(monkeypatch):
    monkeypatch.delenv(image_io.MAX_IMAGE_PIXELS_ENV, raising=False)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm"])
def test_header_size_of_opencv_encodings(suffix) -> None:
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(suffix, image[:, :, 0] if suffix == ".pgm" else image)
    assert ok
    assert image_size_from_header(encoded.tobytes()) == (53, 37)


@pytest.mark.parametrize("fmt, options", [("GIF", {}), ("WEBP", {"lossless": True}), ("JPEG", {"progressive": True}),
                                          ("TIFF", {"compression": "tiff_lzw"}), ("BMP", {})])
def test_header_size_of_pillow_encodings(fmt, options) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new("RGB", (71, 29), (10, 20, 30))
    if fmt == "JPEG":  # an EXIF block before the frame header, as cameras write
        exif = Image.Exif()
        exif[0x010F] = "camera"
        options = {**options, "exif": exif}
    image.save(buffer, fmt, **options)
    assert image_size_from_header(buffer.getvalue()) == (71, 29)


def test_header_size_of_hand_made_headers() -> None:
    vp8x = b"RIFF" + struct.pack("<I", 30) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4
    vp8x += (40000 - 1).to_bytes(3, "little") + (30000 - 1).to_bytes(3, "little")
    assert image_size_from_header(vp8x) == (40000, 30000)
    big_endian_tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2)
    big_endian_tiff += struct.pack(">HHII", 256, 4, 1, 70000) + struct.pack(">HHIHH", 257, 3, 1, 5000, 0)
    assert image_size_from_header(big_endian_tiff) == (70000, 5000)
    assert image_size_from_header(b"P6\n# a comment\n640 480\n255\n") == (640, 480)
    top_down_bmp = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 300, -200)
    assert image_size_from_header(top_down_bmp) == (300, 200)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00", b"\xff\xd8\xff\xe0\x00"])
def test_unknown_or_truncated_headers_give_none(data) -> None:
    assert image_size_from_header(data) is None


def test_a_huge_png_is_refused_from_its_header_quickly(tmp_path) -> None:
    """The issue's case: 30000 x 30000 pixels (a 2.7 GB decode) in a small file."""
    path = tmp_path / "huge.png"
    write_huge_png(path, 30000, 30000)
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as caught:
        read_image(path)
    assert time.perf_counter() - start < 1.0  # decoding would take seconds and gigabytes
    assert str(caught.value) == (
        f"cannot read image {path}: 30000x30000 pixels (900.0 MP) exceed the image pixel budget of 250,000,000 "
        "pixels; raise it with --max-pixels or FACESCOPE_MAX_IMAGE_PIXELS"
    )
    with pytest.raises(ImageTooLargeError):
        check_image_file(path)


def test_the_default_budget_accepts_large_panoramas() -> None:
    assert DEFAULT_MAX_IMAGE_PIXELS == 250_000_000
    image_io.check_image_pixels(20000, 10000, None, "pano.jpg")  # 200 MP
    image_io.check_image_pixels(15000, 6000, None, "pano.jpg")  # 90 MP (e.g. a 6-shot stitch)


def test_budget_from_argument_and_environment(tmp_path, monkeypatch) -> None:
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((40, 50, 3), np.uint8))
    assert read_image(path).shape == (40, 50, 3)
    with pytest.raises(ImageTooLargeError, match="50x40 pixels"):
        read_image(path, max_pixels=1999)
    assert read_image(path, max_pixels=2000).shape == (40, 50, 3)
    monkeypatch.setenv(image_io.MAX_IMAGE_PIXELS_ENV, "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(ImageTooLargeError):
        to_bgr(path)
    monkeypatch.setenv(image_io.MAX_IMAGE_PIXELS_ENV, "many")
    with pytest.raises(image_io.FacescopeError, match="FACESCOPE_MAX_IMAGE_PIXELS must be a pixel count"):
        read_image(path)


def test_pil_images_are_checked_before_conversion(monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setenv(image_io.MAX_IMAGE_PIXELS_ENV, "100")
    with pytest.raises(ImageTooLargeError, match="20x10 pixels"):
        to_bgr(Image.new("RGB", (20, 10)))


def test_cli_refuses_a_huge_image_before_building_the_detector(tmp_path, capsys) -> None:
    from facescope.cli import main

    path = tmp_path / "huge.png"
    write_huge_png(path, 30000, 30000)
    before = sorted(tmp_path.iterdir())
    # absent weights: reaching the detector would be a weights error instead
    code = main(["detect", str(path), "--weights", str(tmp_path / "absent.onnx"), "--json", str(tmp_path / "f.json")])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith("exceed the image pixel budget of 250,000,000 pixels; raise it with --max-pixels or FACESCOPE_MAX_IMAGE_PIXELS")
    assert sorted(tmp_path.iterdir()) == before
    assert main(["detect", str(path), "--max-pixels", "1G", "--weights", str(tmp_path / "absent.onnx")]) == 2
    assert "exceed the image pixel budget" not in capsys.readouterr().err  # got past the budget, to the weights
