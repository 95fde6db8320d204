"""Crop / resize / flip keep boxes and landmarks on the pixels they annotate (draw-and-check)."""

import numpy as np
import pytest

from facescope.data.transforms import (
    BASELINE_CROP_SCALES,
    SR_CROP_SCALES,
    PhotoMetricDistortion,
    RandomFlip,
    RandomSquareCrop,
    Sample,
    scrfd_train_transforms,
)

RED, GREEN, BLUE, WHITE = (0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255)
COLORS = (GREEN, BLUE, WHITE, (0, 255, 255), (255, 0, 255))  # one per landmark, distinct from the face


def synthetic_sample() -> Sample:
    """A 240x360 grey image with two red faces; each landmark is a 7x7 square of its own colour."""
    image = np.full((240, 360, 3), 90, np.float32)
    boxes = np.array([[40, 50, 120, 150], [200, 60, 300, 190]], np.float32)
    landmarks = np.zeros((2, 5, 2), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        image[y1:y2, x1:x2] = RED
        w, h = x2 - x1, y2 - y1
        points = [(x1 + 0.3 * w, y1 + 0.35 * h), (x1 + 0.7 * w, y1 + 0.35 * h), (x1 + 0.5 * w, y1 + 0.55 * h),
                  (x1 + 0.35 * w, y1 + 0.75 * h), (x1 + 0.65 * w, y1 + 0.75 * h)]
        for k, (x, y) in enumerate(points):
            image[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = COLORS[k]
            landmarks[i, k] = (int(x) + 0.5, int(y) + 0.5)
    return Sample(image, boxes, landmarks, np.ones((2, 5), bool))


def pixel(image: np.ndarray, x: float, y: float) -> tuple:
    return tuple(int(v) for v in image[int(y), int(x)])


def close(color_a: tuple, color_b: tuple, tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color_a, color_b))


@pytest.mark.parametrize("seed", range(12))
def test_crop_resize_flip_keep_annotations_on_their_pixels(seed):
    transform = scrfd_train_transforms(SR_CROP_SCALES, image_size=320, photometric=False)
    out = transform(synthetic_sample(), np.random.default_rng(seed))
    assert out.image.shape == (320, 320, 3) and len(out.boxes) >= 1
    flipped_colors = [COLORS[1], COLORS[0], COLORS[2], COLORS[4], COLORS[3]]
    for box, points in zip(out.boxes, out.landmarks):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if 0 <= cx < 320 and 0 <= cy < 320:
            assert close(pixel(out.image, cx, cy), RED) or any(close(pixel(out.image, cx, cy), c) for c in COLORS)
        for k, (x, y) in enumerate(points):
            if not (2 <= x < 318 and 2 <= y < 318):
                continue  # clipped to the border
            seen = pixel(out.image, x, y)
            # Either the original colour (no flip) or the mirrored partner's colour (flip swapped indices).
            assert close(seen, COLORS[k]) or close(seen, flipped_colors[k]), (k, seen)


def test_flip_swaps_left_and_right_by_hand():
    sample = synthetic_sample()
    flipped = RandomFlip(prob=1.0)(sample, np.random.default_rng(0))
    # x' = W - x for boxes (x1' = 360 - 120 = 240, x2' = 360 - 40 = 320)
    assert flipped.boxes[0].tolist() == [240, 50, 320, 150]
    # index 0 (left eye) is now the mirrored right eye, drawn in BLUE
    x, y = flipped.landmarks[0, 0]
    assert x == pytest.approx(360 - sample.landmarks[0, 1, 0])
    assert pixel(flipped.image, x, y) == BLUE


def test_crop_keep_rule_and_padding():
    sample = synthetic_sample()
    crop = RandomSquareCrop(scales=[2.0], pad_value=128.0)
    out = crop(sample, np.random.default_rng(3))
    side = int(2.0 * 240)
    assert out.image.shape[:2] == (side, side)
    assert (out.image == 128).all(axis=2).any()  # area outside the image is filled with the pad value
    assert len(out.boxes) == 2  # both centres inside a crop twice the short side... when it covers them
    small = RandomSquareCrop(scales=[0.3], clip_border=True)(sample, np.random.default_rng(1))
    assert small.image.shape[:2] == (72, 72) and len(small.boxes) == 1
    assert (small.boxes >= 0).all() and (small.boxes <= 72).all()  # clipped to the crop


def test_baseline_scale_set_never_pads():
    for seed in range(20):
        out = RandomSquareCrop(BASELINE_CROP_SCALES)(synthetic_sample(), np.random.default_rng(seed))
        assert not (out.image == 128).all(axis=2).any()


def test_photometric_distortion_is_deterministic_per_rng():
    a = PhotoMetricDistortion()(synthetic_sample(), np.random.default_rng(5)).image
    b = PhotoMetricDistortion()(synthetic_sample(), np.random.default_rng(5)).image
    assert np.array_equal(a, b) and not np.array_equal(a, synthetic_sample().image)


@pytest.mark.parametrize("seed", range(8))
def test_retinaface_pipeline_keeps_annotations_on_their_pixels(seed):
    from facescope.data.transforms import retinaface_train_transforms

    out = retinaface_train_transforms(image_size=320, photometric=False)(synthetic_sample(), np.random.default_rng(seed))
    assert out.image.shape == (320, 320, 3) and len(out.boxes) >= 1
    for box in out.boxes:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert close(pixel(out.image, cx, cy), RED, tol=60) or any(close(pixel(out.image, cx, cy), c, 60) for c in COLORS)
