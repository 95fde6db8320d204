"""DSFD's Improved Anchor Matching augmentation: the anchor bins of data-anchor-sampling, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facescope.data.dsfd_augment import CROP_MODES, DataAnchorSamplingCrop, anchor_choices
from facescope.data.pipelines import build_transforms, list_pipelines
from facescope.data.transforms import Sample
from facescope.engine.config import DataConfig


def _sample(boxes: list[list[float]], hw: tuple[int, int] = (800, 1000)) -> Sample:
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (*hw, 3)).astype(np.float32)
    n = len(boxes)
    return Sample(image, np.asarray(boxes, np.float32), np.zeros((n, 5, 2), np.float32), np.zeros((n, 5), bool))


@pytest.mark.parametrize(
    ("face_side", "expected"),
    [
        (300.0, (16, 32, 64, 128, 256, 512)),  # s > 256: all six
        (256.0, (16, 32, 64, 128, 256)),  # s > 128
        (100.0, (16, 32, 64, 128)),  # s > 64
        (40.0, (16, 32, 64)),  # s > 32
        (32.0, (16, 32)),
        (5.0, (16, 32)),
    ],
)
def test_anchor_choices_follow_the_release_truncation(face_side, expected):
    assert anchor_choices(face_side) == expected


def test_anchor_choices_leave_out_anchors_larger_than_the_input():
    assert anchor_choices(300.0, out_size=320) == (16, 32, 64, 128, 256)


def test_sampled_face_lands_in_the_chosen_anchor_bin_by_hand():
    # A 100 x 100 face in a 1000 x 800 image, re-sampled to anchor 32 for a 640 input: the crop side is
    # 100 * 640 / 32 = 2000 px (larger than the image: the outside is the BGR mean), so after the resize the
    # face measures 100 * 640 / 2000 = 32 px.
    sample = _sample([[400.0, 300.0, 500.0, 400.0]])
    crop = DataAnchorSamplingCrop(out_size=640)
    assert crop.anchor_options(sample.boxes[0]) == (16, 32, 64, 128)
    rng = np.random.default_rng(0)
    left, top, side = crop.anchor_window(sample.boxes[0], 32.0, rng)
    assert side == 2000
    assert left <= 400 and left + side >= 500 and top <= 300 and top + side >= 400  # the face is inside
    out = crop._apply(sample, left, top, side, crop.kept_faces(sample.boxes, left, top, side, 64.0))
    assert out.image.shape == (640, 640, 3)
    (x1, y1, x2, y2) = out.boxes[0]
    assert (x2 - x1, y2 - y1) == pytest.approx((32.0, 32.0), abs=1e-3)
    assert (x1, y1) == pytest.approx(((400 - left) * 0.32, (300 - top) * 0.32), abs=1e-3)
    # Outside the source image the canvas holds the BGR mean (here: the 1000 x 800 image covers at most
    # 320 x 256 of the 640 x 640 output, scale 0.32).
    is_mean = (out.image == np.array([104.0, 117.0, 123.0], np.float32)).all(axis=-1)
    assert is_mean.sum() >= 640 * 640 - 321 * 257


def test_a_non_square_face_keeps_its_area_rule():
    # 40 x 90 face: s = sqrt(3600) = 60 -> anchors 16, 32, 64; anchor 64 at 320 px: side = 60 * 320 / 64 = 300,
    # new size sqrt(40 * 90) * 320 / 300 = 64 (16 / 3 ... exactly 42.667 x 96 px).
    sample = _sample([[200.0, 100.0, 240.0, 190.0]])
    crop = DataAnchorSamplingCrop(out_size=320)
    assert crop.anchor_options(sample.boxes[0]) == (16, 32, 64)
    rng = np.random.default_rng(3)
    left, top, side = crop.anchor_window(sample.boxes[0], 64.0, rng)
    assert side == 300
    out = crop._apply(sample, left, top, side, np.ones(1, bool))
    w, h = out.boxes[0, 2] - out.boxes[0, 0], out.boxes[0, 3] - out.boxes[0, 1]
    assert (w, h) == pytest.approx((40 * 320 / 300, 90 * 320 / 300), abs=1e-3)
    assert math.sqrt(w * h) == pytest.approx(64.0, abs=1e-3)


def test_every_sampled_crop_puts_a_lone_face_in_an_anchor_bin_or_an_ssd_scale():
    # With one 100 px face, a data-anchor-sampling crop makes it 16, 32, 64 or 128 px at 640; an SSD crop
    # (side in [0.3, 1) x 800, or 800) makes it 100 * 640 / side, i.e. between 80 and 266.7 px.
    sample = _sample([[400.0, 300.0, 500.0, 400.0]])
    crop = DataAnchorSamplingCrop(out_size=640)
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(200):
        out = crop(sample, rng)
        assert len(out.boxes) == 1
        sizes.append(float(np.sqrt((out.boxes[0, 2] - out.boxes[0, 0]) * (out.boxes[0, 3] - out.boxes[0, 1]))))
    anchored = [s for s in sizes if min(abs(s - a) for a in (16, 32, 64, 128)) < 0.01]
    ssd = [s for s in sizes if s not in anchored]
    assert all(80.0 - 0.01 <= s <= 100 * 640 / 240 + 0.01 for s in ssd)
    # The anchor modes are 2 of the 5 crop modes: 40 % of the draws, give or take sampling noise.
    assert CROP_MODES.count("anchor") == 2
    assert 0.3 < len(anchored) / len(sizes) < 0.5
    assert {round(s) for s in anchored} == {16, 32, 64, 128}


def test_dsfd_pipeline_is_registered_and_gives_square_inputs():
    assert "dsfd" in list_pipelines()
    sample = _sample([[400.0, 300.0, 500.0, 400.0], [100.0, 100.0, 130.0, 140.0]])
    out = build_transforms(DataConfig(pipeline="dsfd", image_size=320))(sample, np.random.default_rng(0))
    assert out.image.shape == (320, 320, 3) and out.image.dtype == np.float32
    assert len(out.boxes) >= 1 and (out.boxes >= 0).all() and (out.boxes <= 320).all()
