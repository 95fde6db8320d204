import torch

from facescope.ops.anchors import AnchorGenerator


def scrfd_generator(**kwargs):
    return AnchorGenerator((8, 16, 32), ((16, 32), (64, 128), (256, 512)), **kwargs)


def test_scrfd_grid_layout_by_hand():
    priors = scrfd_generator().priors((64, 96))  # feature maps 8x12, 4x6, 2x3
    assert priors.num_per_level == (8 * 12 * 2, 4 * 6 * 2, 2 * 3 * 2)
    # Row-major locations, two anchors each (16 then 32), centred on grid corners.
    assert priors.centers[:4].tolist() == [[0, 0], [0, 0], [8, 0], [8, 0]]
    assert priors.sizes[:2].tolist() == [[16, 16], [32, 32]]
    # Location (row 1, col 0) of level 0 starts at index 12 * 2.
    assert priors.centers[24].tolist() == [0, 8]
    first_level1 = priors.num_per_level[0]
    assert priors.centers[first_level1 + 2].tolist() == [16, 0] and priors.strides[first_level1].item() == 16
    assert priors.boxes()[1].tolist() == [-16, -16, 16, 16]


def test_center_offset_and_ceil_feature_sizes():
    gen = AnchorGenerator((8,), ((16,),), center_offset=0.5)
    assert gen.feature_sizes((17, 9)) == [(3, 2)]
    assert gen.priors((17, 9)).centers.tolist() == [[4, 4], [12, 4], [4, 12], [12, 12], [4, 20], [12, 20]]


def test_priors_at_640_and_bounded_cache():
    gen = scrfd_generator(cache_size=4)
    assert len(gen.priors((640, 640))) == 16800
    first = gen.priors((640, 640))
    assert gen.priors((640, 640)) is first  # cached
    for side in range(32, 32 * 20, 32):
        gen.priors((side, side))
    assert len(gen._cache) == 4
    assert gen.priors((640, 640)) is not first and torch.equal(gen.priors((640, 640)).centers, first.centers)


def test_aspect_ratio_anchor_grid_by_hand():
    """DSFD's ratio 1.5 (h:w): w = s / sqrt(1.5), h = s * sqrt(1.5); one anchor per cell, centred."""
    import math

    import numpy as np

    from facescope.ops.anchors import anchor_shape

    w16, h16 = anchor_shape(16, 1.5)
    assert (round(w16, 2), round(h16, 2)) == (13.06, 19.6) and math.isclose(w16 * h16, 256.0)
    gen = AnchorGenerator((4, 8), ((anchor_shape(16, 1.5),), (anchor_shape(32, 1.5),)), center_offset=0.5)
    grid = gen.grid((8, 8))  # level 0: 2x2 cells, level 1: 1x1
    assert grid.num_per_level == (4, 1)
    assert grid.centers.tolist() == [[2, 2], [6, 2], [2, 6], [6, 6], [4, 4]]
    assert np.allclose(grid.sizes[0], [16 / math.sqrt(1.5), 16 * math.sqrt(1.5)])
    assert np.allclose(grid.sizes[4], [32 / math.sqrt(1.5), 32 * math.sqrt(1.5)])
    assert np.allclose(grid.boxes()[0], [2 - w16 / 2, 2 - h16 / 2, 2 + w16 / 2, 2 + h16 / 2])
    assert grid.strides.tolist() == [4, 4, 4, 4, 8]


def test_numpy_grid_equals_torch_priors_and_no_torch_needed():
    import numpy as np

    gen = scrfd_generator()
    grid, priors = gen.grid((96, 64)), gen.priors((96, 64))
    assert isinstance(grid.centers, np.ndarray) and grid.centers.dtype == np.float32
    assert np.array_equal(grid.centers, priors.centers.numpy()) and np.array_equal(grid.sizes, priors.sizes.numpy())
    assert np.array_equal(grid.boxes(), priors.boxes().numpy())
    assert gen == AnchorGenerator((8, 16, 32), (((16, 16), (32, 32)), (64, 128), (256, 512)))  # square = (s, s)
