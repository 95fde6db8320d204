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
