import numpy as np
import pytest
from PIL import Image

from facescope.errors import ImageReadError
from facescope.inference.image_io import read_image, to_bgr


def test_numpy_needs_explicit_colour_order_and_converts():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(ImageReadError, match="color_order"):
        to_bgr(rgb)
    assert to_bgr(rgb, "rgb")[0, 0].tolist() == [0, 0, 200]
    assert to_bgr(rgb, "bgr")[0, 0].tolist() == [200, 0, 0]
    assert to_bgr(np.full((4, 5), 7, np.uint8)).shape == (4, 5, 3)
    assert to_bgr(np.zeros((4, 5, 4), np.uint8), "rgb").shape == (4, 5, 3)


def test_pil_and_errors(tmp_path):
    pil = Image.new("RGB", (6, 4), (10, 20, 30))
    assert to_bgr(pil)[0, 0].tolist() == [30, 20, 10]
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match=r"corrupt.jpg: not a decodable image"):
        read_image(corrupt)
    with pytest.raises(ImageReadError, match="0..255"):
        to_bgr(np.zeros((4, 4, 3), np.float32), "rgb")
    with pytest.raises(ImageReadError, match="unsupported image type"):
        to_bgr(42)
