"""SHF's training augmentation: hand-computed sizes, crops by face centre, the /16 cut, and the batch padding."""

import numpy as np
import torch

from facescope.data.dataset import collate
from facescope.data.pipelines import build_transforms, shf_short_sides
from facescope.data.shf_transforms import CutToMultiple, SHFPhotometricDistortion, SHFRandomCrop, ShortSideResize
from facescope.data.transforms import Sample
from facescope.engine.config import DataConfig
from facescope.structures import FaceTargets


def sample(height, width, boxes):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    image = np.full((height, width, 3), 100.0, np.float32)
    return Sample(image, boxes, np.zeros((n, 5, 2), np.float32), np.zeros((n, 5), bool))


def test_short_side_sets_of_the_pipeline():
    assert shf_short_sides(1200) == ((400, 800, 1200), 2000)  # the release
    assert shf_short_sides(480) == ((160, 320, 480), 800)


def test_short_side_resize_and_the_long_side_cap():
    rng = np.random.default_rng(0)
    out = ShortSideResize((400,), 2000)(sample(300, 500, [[30, 60, 90, 120]]), rng)
    assert out.image.shape[:2] == (400, 667)  # 4/3: 500 x 4/3 = 666.7 -> 667
    np.testing.assert_allclose(out.boxes, [[40, 80, 120, 160]], rtol=1e-3)
    out = ShortSideResize((1200,), 2000)(sample(1000, 3000, [[0, 0, 30, 30]]), rng)
    assert out.image.shape[:2] == (667, 2000)  # 1200 / 1000 would make 3600 > 2000: the long side goes to 2000


def test_cut_to_multiple_of_16_drops_faces_centred_in_the_strip():
    out = CutToMultiple(16)(sample(40, 50, [[2, 2, 20, 20], [40, 10, 50, 20], [20, 30, 40, 40]]), None)
    assert out.image.shape[:2] == (32, 48)
    # face 0 stays; face 1 (centre x 45 < 48) is clipped to x2 = 48; face 2 (centre y 35 >= 32) is dropped
    np.testing.assert_array_equal(out.boxes, [[2, 2, 20, 20], [40, 10, 48, 20]])


def test_random_crop_keeps_faces_by_centre_and_clips_them():
    rng = np.random.default_rng(1)
    crop = SHFRandomCrop(prob=1.0)
    source = sample(100, 200, [[10, 10, 30, 30], [150, 60, 190, 95]])
    for _ in range(20):
        out = crop(source, rng)
        h, w = out.image.shape[:2]
        assert 0.6 * 100 - 1 <= h <= 100 and 0.6 * 200 - 1 <= w <= 200 and len(out.boxes) >= 1
        assert (out.boxes >= 0).all() and (out.boxes[:, [0, 2]] <= w).all() and (out.boxes[:, [1, 3]] <= h).all()
    assert crop(sample(50, 50, []), rng).image.shape == (50, 50, 3)  # no face: kept whole


def test_photometric_distortion_stays_in_pixel_range():
    rng = np.random.default_rng(2)
    image = np.random.default_rng(3).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    source = Sample(image, np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0, 5), bool))
    for _ in range(10):
        out = SHFPhotometricDistortion()(source, rng).image
        assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255


def test_pipeline_output_sides_are_multiples_of_16():
    transforms = build_transforms(DataConfig(pipeline="shf", image_size=480))
    rng = np.random.default_rng(4)
    for _ in range(5):
        out = transforms(sample(300, 451, [[100, 100, 160, 170]]), rng)
        assert out.image.shape[0] % 16 == 0 and out.image.shape[1] % 16 == 0


def test_collate_pads_bottom_right_and_targets_keep_their_image_size():
    small, large = torch.ones(3, 16, 32), torch.full((3, 32, 16), 2.0)
    targets = [FaceTargets.from_boxes(torch.zeros(0, 4)) for _ in range(2)]
    targets[0].image_hw, targets[1].image_hw = (16, 32), (32, 16)
    batch = collate([(small, targets[0], 5), (large, targets[1], 7)])
    assert batch.images.shape == (2, 3, 32, 32) and batch.indices.tolist() == [5, 7]
    assert batch.images[0, :, :16, :].eq(1).all() and batch.images[0, :, 16:, :].eq(0).all()  # zero = the mean pixel
    assert batch.images[1, :, :, 16:].eq(0).all()
    assert [t.image_hw for t in batch.targets] == [(16, 32), (32, 16)]
    assert batch.to(torch.device("cpu")).targets[1].image_hw == (32, 16)
