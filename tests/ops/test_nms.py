"""Torch-free numpy box ops: pairwise IoU in both pixel conventions."""


def test_pairwise_iou_numpy_hand_computed_in_both_pixel_conventions():
    import numpy as np

    from facescope.ops.nms import pairwise_iou_numpy

    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    # continuous: overlap 5x10 = 50, union 100 + 100 - 50 = 150; disjoint 0; an empty box gives an empty union term
    assert np.allclose(pairwise_iou_numpy(a, b), [[50 / 150, 0.0, 0.0]])
    # "+1" widths: overlap 6x11 = 66, union 121 + 121 - 66 = 176; the point box is 1x1 inside a: 1 / 121
    assert np.allclose(pairwise_iou_numpy(a, b, pixel_offset=1.0), [[66 / 176, 0.0, 1 / 121]])
