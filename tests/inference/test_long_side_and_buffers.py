"""``long:N`` resizing (hand-computed sizes) and the reused input buffers of the single-image path
(equal to :func:`to_blob` bit for bit, across input sizes and image sizes in any order)."""

import numpy as np
import pytest

from facescope.errors import FacescopeError
from facescope.inference.preprocess import InputBuffers, ResizedImage, resize_image, resize_long_side, to_blob
from facescope.inference.validate import check_input_size
from facescope.models.spec import InferencePreset, InputSpec, ResizeSpec

SCRFD_SPEC = InputSpec()  # mean 127.5, std 128, RGB, divisor 32
BGR_SPEC = InputSpec(mean=(104.0, 117.0, 123.0), std=(1.0, 2.0, 4.0), color="bgr", size_divisor=1)


@pytest.mark.parametrize(
    ("hw", "long", "divisor", "content_hw", "input_hw"),
    [
        ((768, 1024), 640, 32, (480, 640), (480, 640)),  # 4:3 landscape: 640x480, already a multiple of 32
        ((750, 1000), 500, 32, (375, 500), (384, 512)),  # 375 -> 384, 500 -> 512
        ((1000, 333), 640, 32, (640, 213), (640, 224)),  # portrait: 333 * 0.64 = 213.12 -> 213 -> 224
        ((100, 150), 300, 32, (200, 300), (224, 320)),  # up-scaled: the longer side still becomes N
        ((10, 1000), 640, 1, (6, 640), (6, 640)),  # 6.4 -> int(6.9) = 6; divisor 1 pads nothing
        ((1, 5000), 640, 32, (1, 640), (32, 640)),  # never below one pixel
    ],
)
def test_long_side_sizes_by_hand(hw, long, divisor, content_hw, input_hw):
    item = resize_long_side(np.zeros((*hw, 3), np.uint8), long, divisor)
    assert item.image.shape[:2] == content_hw and item.input_hw == input_hw
    # separate x and y factors: the inverse map is exact
    assert item.scale_xy == (content_hw[1] / hw[1], content_hw[0] / hw[0])


def test_long_side_keeps_an_image_already_at_size_without_a_copy():
    image = np.zeros((480, 640, 3), np.uint8)
    assert resize_long_side(image, 640, 32).image is image


def test_long_n_through_presets_and_validation():
    preset = InferencePreset("x", ResizeSpec("letterbox", (640, 640))).with_overrides(input_size="long:800")
    assert preset.resize.mode == "long" and preset.resize.size == (800, 800)
    assert check_input_size("LONG:960") == "long:960"
    for bad in ("long:", "long:0", "long:abc", "long:99999", "longest:640"):
        with pytest.raises(FacescopeError):
            check_input_size(bad)
    item = resize_image(np.zeros((600, 800, 3), np.uint8), preset.resize, SCRFD_SPEC)
    assert item.image.shape[:2] == (600, 800) and item.input_hw == (608, 800)


@pytest.mark.parametrize("spec", [SCRFD_SPEC, BGR_SPEC], ids=["rgb-uniform-std", "bgr-per-channel-std"])
@pytest.mark.parametrize("pad_value", [0.0, 127.5])
def test_input_buffers_equal_to_blob_across_sizes(spec, pad_value):
    rng = np.random.default_rng(0)
    buffers = InputBuffers(spec, pad_value, cache_size=2)
    # same input size with shrinking / growing content, then other sizes, then back (cache evicted)
    shapes = [((64, 96), (64, 96)), ((40, 96), (64, 96)), ((64, 50), (64, 96)), ((30, 30), (64, 96)),
              ((64, 96), (64, 96)), ((32, 32), (32, 32)), ((20, 32), (32, 64)), ((17, 90), (64, 96))]
    seen = []
    for content_hw, input_hw in shapes:
        image = rng.integers(0, 256, size=(*content_hw, 3), dtype=np.uint8)
        item = ResizedImage(image, input_hw, (1.0, 1.0), content_hw)
        got = buffers(item)
        np.testing.assert_array_equal(got, to_blob([item], spec, pad_value))
        seen.append(got)
    assert seen[0] is seen[1]  # one buffer per input size, reused
    assert len(buffers._local.buffers) == 2  # bounded by cache_size


@pytest.mark.shared
def test_detector_reused_buffers_match_the_batch_path(scrfd_onnx, wider_val_images):
    """One image per forward (reused buffers) gives the faces the batched path (a fresh
    ``to_blob``) gives, whatever sizes came before; ``long:N`` runs at the aspect-kept size."""
    import cv2

    from facescope import Detector

    detector = Detector("scrfd_500m_kps", scrfd_onnx["scrfd_500m_kps"], input_size="long:320", threads=1, progress=False)
    images = [cv2.imread(str(p)) for p in wider_val_images[:3]]
    crops = [images[0][:200, :300], images[1], images[0][:300, :200], images[2]]
    singles = [detector.detect(img, color_order="bgr") for img in crops + crops[::-1]]
    for single, img in zip(singles, crops + crops[::-1]):
        batch = detector.detect_batch([img, img], color_order="bgr")[0]
        np.testing.assert_array_equal(single.boxes, batch.boxes)
        np.testing.assert_array_equal(single.scores, batch.scores)
    assert "longer side 320" in detector.describe()
    assert detector.detector_scale((300, 200)) == 320 / 300
