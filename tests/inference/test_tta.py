"""TTA: pass geometry, the published protocols' plans, the pixel budget and the run_tta driver."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import facescope.inference.tta as tta_module
import facescope.inference.tta_transforms as tta_transforms_module
import facescope.models.tta_specs as tta_specs_module
import facescope.ops.voting as voting_module
from facescope.inference.tta import (
    BIG_FACES,
    SMALL_FACES,
    TTA_PROTOCOLS,
    Factors,
    MergeSpec,
    PassTransform,
    SizeFilter,
    TTASpec,
    UnknownTTAProtocolError,
    apply_pass_rules,
    filter_candidates,
    get_tta_protocol,
    max_shrink,
    plan_passes,
    run_tta,
)
from facescope.structures import LANDMARK_FLIP_PAIRS

# A face and its five points (left eye, right eye, nose, left mouth, right mouth) in original pixels.
BOX = np.array([[12.0, 20.0, 52.0, 68.0]], np.float32)
POINTS = np.array([[[22, 34], [42, 35], [32, 46], [24, 58], [40, 59]]], np.float32)


# ---------------------------------------------------------------------------------------------- geometry


def test_flip_and_scale_map_back_exactly() -> None:
    transform = PassTransform.for_resize((100, 80), (50, 40), flipped=True)  # scale 0.5, mirror in a 40-wide image
    boxes, points = transform.to_pass(BOX, POINTS)
    # x: 40 - 0.5 * x with x1/x2 swapped; y: 0.5 * y
    np.testing.assert_array_equal(boxes, [[40 - 26, 10, 40 - 6, 34]])
    assert points is not None
    # The mirrored left eye is the image of the right eye (42, 35) -> (40 - 21, 17.5), and so on.
    np.testing.assert_array_equal(points[0], [[19, 17.5], [29, 17], [24, 23], [20, 29.5], [28, 29]])
    back_boxes, back_points = transform.to_original(boxes, points)
    np.testing.assert_array_equal(back_boxes, BOX)
    np.testing.assert_array_equal(back_points, POINTS)


def test_non_dyadic_scale_round_trip() -> None:
    transform = PassTransform.for_resize((768, 1024), (1671, 2228), flipped=True, flip_pixel_offset=1.0)
    boxes, points = transform.to_original(*transform.to_pass(BOX, POINTS))
    np.testing.assert_allclose(boxes, BOX, atol=1e-4)
    np.testing.assert_allclose(points, POINTS, atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_flipping_twice_is_the_identity(offset: float) -> None:
    mirror = PassTransform(1.0, 1.0, (100, 80), flipped=True, flip_width=80.0, flip_pixel_offset=offset)
    once = mirror.to_pass(BOX, POINTS)
    twice = mirror.to_pass(*once)
    np.testing.assert_array_equal(twice[0], BOX)
    np.testing.assert_array_equal(twice[1], POINTS)
    assert once[1] is not None and not np.array_equal(once[1], POINTS)
    image = np.random.default_rng(0).integers(0, 255, size=(100, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(mirror.forward_image(mirror.forward_image(image)), image)


def test_landmark_flip_pairs_are_the_contracts() -> None:
    assert LANDMARK_FLIP_PAIRS == ((0, 1), (3, 4))
    mirror = PassTransform(1.0, 1.0, (100, 80), flipped=True, flip_width=80.0)
    _, points = mirror.to_pass(BOX, POINTS)
    assert points is not None
    assert points[0, 0, 0] < points[0, 1, 0]  # the left eye stays the one with the smaller x
    assert points[0, 2, 0] == 80 - 32  # the nose only mirrors


def test_plus_one_convention_matches_the_pixel_grid() -> None:
    # In the pixel-index convention (x is a column), column c of a W-wide image lands on W - 1 - c.
    image = np.zeros((10, 20), np.uint8)
    image[3, 5] = 255
    mirror = PassTransform(1.0, 1.0, (10, 20), flipped=True, flip_width=20.0, flip_pixel_offset=1.0)
    flipped = mirror.forward_image(image)
    assert np.argwhere(flipped == 255).tolist() == [[3, 14]]
    boxes, _ = mirror.to_pass(np.array([[5, 3, 5, 3]], np.float32))
    np.testing.assert_array_equal(boxes, [[14, 3, 14, 3]])


def test_forward_image_resizes_then_mirrors() -> None:
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    unscaled = PassTransform.for_resize((4, 6), (4, 6), flipped=True)
    np.testing.assert_array_equal(unscaled.forward_image(image), image[:, ::-1])
    doubled = PassTransform.for_resize((4, 6), (8, 12), flipped=False).forward_image(image)
    assert doubled.shape == (8, 12, 3) and doubled.dtype == np.uint8


# ---------------------------------------------------------------------------------------------- filters


def test_size_filters_use_plus_one_widths_and_strict_bounds() -> None:
    boxes = np.array([[0, 0, 29, 9], [0, 0, 30, 9], [0, 0, 98, 200], [0, 0, 99, 200]], np.float32)
    # big: max(w + 1, h + 1) > 30 -> 30 no, 31 yes; small: min(w + 1, h + 1) < 100 -> 99 yes, 100 no.
    assert BIG_FACES.mask(boxes).tolist() == [False, True, True, True]
    assert SMALL_FACES.mask(boxes).tolist() == [True, True, True, False]


def test_filter_candidates_applies_the_pass_filter() -> None:
    plan = plan_passes(get_tta_protocol("s3fd"), (768, 1024))[2]  # det_s: keep big only
    assert plan.label == "det_s" and plan.size_filter == BIG_FACES
    boxes = np.array([[0, 0, 29, 9], [0, 0, 30, 9]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    kept_boxes, kept_scores, kept_points = filter_candidates(plan, boxes, scores, np.zeros((2, 5, 2), np.float32))
    np.testing.assert_array_equal(kept_boxes, boxes[1:])
    np.testing.assert_array_equal(kept_scores, scores[1:])
    assert kept_points is not None and kept_points.shape == (1, 5, 2)


# ---------------------------------------------------------------------------------------------- plans


PassSummary = tuple[str, float, tuple[int, int], bool, str]


def _summary(name: str, image_hw: tuple[int, int], **kwargs: float) -> list[PassSummary]:
    return [
        (p.label, round(p.scale, 4), p.target_hw, p.flipped, p.size_filter.keep if p.size_filter else "-")
        for p in plan_passes(get_tta_protocol(name), image_hw, **kwargs)  # type: ignore[arg-type]
    ]


HW = (768, 1024)  # H * W = 786,432


def test_max_shrink_by_hand() -> None:
    # s3fd: sqrt(2147483647 / 577 / 786432) = sqrt(4.73250) = 2.17544
    assert max_shrink("s3fd", HW) == pytest.approx(2.17544, abs=1e-5)
    # dsfd: sqrt(2147483647 / 200 / 786432) = 3.69504, capped at 3
    assert max_shrink("dsfd", HW) == 3.0
    # pyramidbox: min(2.17544, sqrt(2777088 / 786432) = 1.87916) -> 1.87 -> -0.3 = 1.57 in [1.5, 2) -> -0.1
    assert max_shrink("pyramidbox", HW) == pytest.approx(1.47, abs=1e-12)


def test_s3fd_plan() -> None:
    assert _summary("s3fd", HW) == [
        ("det0", 1.0, (768, 1024), False, "-"),  # shrink = min(2.175, 1)
        ("det1", 1.0, (768, 1024), True, "-"),
        ("det_s", 0.5, (384, 512), False, "big"),  # st = 0.5 since max_shrink >= 0.75
        ("det_b", 2.0, (1536, 2048), False, "small"),  # bt = min(2, 2.175); doubled to 4 > 1: small
        ("det_b", 2.1754, (1671, 2228), False, "small"),  # 4 >= 2.175 stops the chain, then max_shrink
    ]


def test_s3fd_plan_of_a_large_image_shrinks() -> None:
    # 3000 x 4000: max_shrink = sqrt(3721808.7 / 12e6) = 0.55691 < 0.75, so st = 0.5 * 0.55691 = 0.27846;
    # bt = (st + 0.55691) / 2 = 0.41768 <= 1: keep big
    assert _summary("s3fd", (3000, 4000)) == [
        ("det0", 0.5569, (1671, 2228), False, "-"),
        ("det1", 0.5569, (1671, 2228), True, "-"),
        ("det_s", 0.2785, (835, 1114), False, "big"),
        ("det_b", 0.4177, (1253, 1671), False, "big"),
    ]


def test_s3fd_plan_of_a_small_image_doubles() -> None:
    # 200 x 300: max_shrink = sqrt(3721808.7 / 60000) = 7.87592; bt: 2, then 4 (< 7.876), 8 stops; + 7.876
    assert [(label, scale, keep) for label, scale, _, _, keep in _summary("s3fd", (200, 300))][2:] == [
        ("det_s", 0.5, "big"),
        ("det_b", 2.0, "small"),
        ("det_b", 4.0, "small"),
        ("det_b", 7.8759, "small"),
    ]


def test_dsfd_plan() -> None:
    assert _summary("dsfd", HW) == [
        ("det0", 1.0, (768, 1024), False, "-"),
        ("det1", 1.0, (768, 1024), True, "-"),
        ("det_s", 0.5, (384, 512), False, "big"),
        ("det_s", 0.75, (576, 768), False, "big"),  # DSFD: + 0.75 as max_shrink > 0.75
        ("det_b", 2.0, (1536, 2048), False, "small"),
        ("det_b", 1.5, (1152, 1536), False, "small"),  # DSFD: + 1.5 as max_shrink > 1.5
        ("det_b", 3.0, (2304, 3072), False, "small"),  # 4 >= 3 stops the chain, then max_shrink = 3
        ("pyramid", 0.25, (192, 256), False, "big"),
        ("pyramid", 1.25, (960, 1280), False, "small"),
        ("pyramid", 1.75, (1344, 1792), False, "small"),
        ("pyramid", 2.25, (1728, 2304), False, "small"),  # 2.25 <= 3
    ]


def test_pyramidbox_plan() -> None:
    assert _summary("pyramidbox", HW) == [
        ("det0", 1.0, (768, 1024), False, "-"),
        ("det1", 1.0, (768, 1024), True, "-"),
        ("det_s", 0.5, (384, 512), False, "big"),
        ("det_b", 1.47, (1129, 1505), False, "small"),  # bt = min(2, 1.47) > 1: small
        ("pyramid", 0.25, (192, 256), False, "big"),
        ("pyramid", 0.75, (576, 768), False, "big"),
        ("pyramid", 1.25, (960, 1280), False, "small"),  # 1.5 and 1.75 exceed max_shrink 1.47
    ]


def test_retinaface_plan() -> None:
    # base: 800 / 768 = 1.041667 (long side 1067 <= 1200); scales [500 .. 1700] / 800 * base, each mirrored
    summary = _summary("retinaface", HW)
    assert [s[1] for s in summary[::2]] == [0.651, 1.0417, 1.4323, 1.8229, 2.2135]
    assert [s[2] for s in summary[::2]] == [(500, 667), (800, 1067), (1100, 1467), (1400, 1867), (1700, 2267)]
    assert [s[3] for s in summary] == [False, True] * 5
    assert {s[4] for s in summary} == {"-"}
    assert all(p.transform.flip_pixel_offset == 1.0 for p in plan_passes(get_tta_protocol("retinaface"), HW))


def test_retinaface_base_caps_the_long_side() -> None:
    # 400 x 1000: 800 / 400 = 2 would make the long side 2000 > 1200, so base = 1200 / 1000 = 1.2
    assert _summary("retinaface", (400, 1000))[2][1:3] == (1.2, (480, 1200))


def test_shf_plan() -> None:
    summary = _summary("shf", HW)
    # [100, 300, 600, 1000, 1400] / 800 * 1.041667, each mirrored
    assert [s[1] for s in summary[::2]] == [0.1302, 0.3906, 0.7812, 1.3021, 1.8229]
    assert [s[2] for s in summary[::2]] == [(100, 133), (300, 400), (600, 800), (1000, 1333), (1400, 1867)]
    assert [s[3] for s in summary] == [False, True] * 5
    spec = get_tta_protocol("shf")
    assert (spec.merge.iou, spec.merge.singleton, spec.merge.max_detections) == (0.4, "keep_last", None)


def test_user_protocols_follow_the_detector_scale() -> None:
    # a 640 letterbox of a 1024-wide image: detector_scale = 0.625
    assert _summary("multiscale", HW, detector_scale=0.625) == [
        ("scale", 0.3125, (240, 320), False, "-"),
        ("scale", 0.3125, (240, 320), True, "-"),
        ("scale", 0.625, (480, 640), False, "-"),
        ("scale", 0.625, (480, 640), True, "-"),
        ("scale", 0.9375, (720, 960), False, "-"),
        ("scale", 0.9375, (720, 960), True, "-"),
    ]
    assert _summary("flip", HW, detector_scale=0.625) == [
        ("scale", 0.625, (480, 640), False, "-"),
        ("scale", 0.625, (480, 640), True, "-"),
    ]


def test_published_merges() -> None:
    merges = {
        name: (s.merge.method, s.merge.iou, s.merge.singleton, s.merge.max_detections)
        for name, s in TTA_PROTOCOLS.items()
    }
    assert merges["s3fd"] == merges["dsfd"] == ("box_voting", 0.3, "drop", 750)
    assert merges["pyramidbox"] == ("box_voting", 0.3, "keep_last", 750)
    assert merges["retinaface"] == ("box_voting", 0.4, "keep_last", 750)
    assert set(TTA_PROTOCOLS) == {"s3fd", "dsfd", "pyramidbox", "retinaface", "shf", "flip", "multiscale"}


def test_unknown_protocol_suggests_a_name() -> None:
    with pytest.raises(UnknownTTAProtocolError, match="did you mean 'dsfd'"):
        get_tta_protocol("dsdf")


# ---------------------------------------------------------------------------------------------- budget


def test_pixel_budget_caps_a_pass_with_a_note() -> None:
    plans = plan_passes(get_tta_protocol("multiscale"), (3000, 4000), max_pixels=16_000_000)
    # 1.5 x 12 MP = 27 MP > 16 MP: scale sqrt(16 / 12) = 1.1547 -> floor -> 3464 x 4618 = 15.997 MP
    assert [p.target_hw for p in plans] == [(1500, 2000)] * 2 + [(3000, 4000)] * 2 + [(3464, 4618)] * 2
    assert plans[4].scale == pytest.approx(1.1547, abs=1e-4)
    assert plans[0].note is None and plans[2].note is None
    assert plans[4].note is not None and "6000x4500 (27.0 MP)" in plans[4].note and "16 MP" in plans[4].note
    assert all(p.target_hw[0] * p.target_hw[1] <= 16_000_000 for p in plans)


def test_passes_made_identical_by_the_cap_run_once() -> None:
    # 100 x 100 with a 5000-pixel budget: 1.0 and 1.5 both become 70 x 70 (cap sqrt(0.5)); 1.5 is skipped.
    plans = plan_passes(get_tta_protocol("multiscale"), (100, 100), max_pixels=5000)
    assert [(p.target_hw, p.flipped) for p in plans] == [
        ((50, 50), False), ((50, 50), True), ((70, 70), False), ((70, 70), True)
    ]
    assert plans[2].note is not None and "skipped" in plans[2].note


def test_published_protocols_fit_the_default_budget_on_any_size() -> None:
    for name in ["s3fd", "dsfd", "pyramidbox", "retinaface", "shf"]:
        for hw in [(768, 1024), (1024, 683), (300, 400), (2000, 1500), (20, 30), (6000, 8000), (100, 4000)]:
            assert all(p.note is None for p in plan_passes(get_tta_protocol(name), hw)), (name, hw)


# ---------------------------------------------------------------------------------------------- driver


def _scene() -> np.ndarray:
    """A 96 x 128 black image with two white "faces" at multiples of 4 (exact under 0.5/1.5/2 resizes)."""
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:68, 12:52] = 255  # face A: [12, 20, 52, 68], 40 x 48
    image[40:52, 80:92] = 255  # face B: [80, 40, 92, 52], 12 x 12
    return image


FACES = np.array([[12, 20, 52, 68], [80, 40, 92, 52]], np.float32)


def _fake_points(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    fractions = [(0.3, 0.3), (0.7, 0.3), (0.5, 0.55), (0.35, 0.8), (0.65, 0.8)]
    return np.array([[x1 + fx * w, y1 + fy * h] for fx, fy in fractions], np.float32)


def fake_run_pass(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A "detector" that finds white blobs of its input, in its input's pixels: bounding boxes
    (continuous corners), a score growing with the blob size, and five points placed on the blob as a
    face's would be (left eye on the image's left)."""
    mask = image[..., 0] > 127
    boxes = []
    columns = np.flatnonzero(mask.any(axis=0))
    splits = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if columns.size else []
    for cols in splits:
        rows = np.flatnonzero(mask[:, cols[0] : cols[-1] + 1].any(axis=1))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    boxes_arr = np.array(boxes, np.float32).reshape(-1, 4)
    scores = np.clip(0.5 + (boxes_arr[:, 2] - boxes_arr[:, 0]) / 200, 0, 1).astype(np.float32)
    points = np.stack([_fake_points(b) for b in boxes_arr]) if boxes else np.zeros((0, 5, 2), np.float32)
    return boxes_arr, scores, points


def test_run_tta_maps_every_pass_back_onto_the_same_faces() -> None:
    calls: list[tuple[int, int]] = []

    def run_pass(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        calls.append(image.shape[:2])
        return fake_run_pass(image)

    result = run_tta(get_tta_protocol("multiscale"), _scene(), run_pass)
    assert calls == [(48, 64), (48, 64), (96, 128), (96, 128), (144, 192), (144, 192)]
    # Six passes found each face at the same original box: voting merges each into one, unchanged.
    order = np.argsort(result.boxes[:, 0])
    np.testing.assert_allclose(result.boxes[order], FACES, atol=1e-4)
    assert result.landmarks is not None
    np.testing.assert_allclose(result.landmarks[order], np.stack([_fake_points(b) for b in FACES]), atol=1e-4)
    # max over passes: the 1.5x pass sees A 60 and B 18 wide: 0.5 + 60 / 200, 0.5 + 18 / 200
    np.testing.assert_allclose(result.scores, [0.8, 0.59], atol=1e-6)
    assert len(result.passes) == 6 and result.notes == ()


def test_run_tta_batches_same_size_passes_and_reports_progress() -> None:
    batches: list[int] = []
    progress: list[tuple[int, int, str]] = []

    def run_batch(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        batches.append(len(images))
        return [fake_run_pass(image) for image in images]

    result = run_tta(
        get_tta_protocol("multiscale"),
        _scene(),
        run_batch=run_batch,
        progress=lambda i, n, p: progress.append((i, n, p.label)),
    )
    assert batches == [2, 2, 2]
    assert progress == [(0, 6, "scale"), (2, 6, "scale"), (4, 6, "scale")]
    assert len(result.boxes) == 2
    with pytest.raises(ValueError, match="exactly one"):
        run_tta(get_tta_protocol("flip"), _scene())


def test_run_plans_batches_consecutive_same_size_passes_of_several_images() -> None:
    from facescope.inference.tta import run_plans

    spec = get_tta_protocol("flip")
    scene, mirrored = _scene(), np.ascontiguousarray(_scene()[:, ::-1])
    plans = [plan_passes(spec, image.shape[:2]) for image in (scene, mirrored)]
    batches: list[int] = []

    def run_batch(images: list[np.ndarray], batch_plans: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        batches.append(len(images))
        assert len({plan.target_hw for plan in batch_plans}) == 1
        return [fake_run_pass(image) for image in images]

    results = run_plans(spec, [scene, mirrored], plans, run_batch, max_batch=3)
    assert batches == [3, 1]  # four same-size passes (two images, each with its mirror), at most three at a time
    for image, result in zip((scene, mirrored), results):
        alone = run_tta(spec, image, fake_run_pass)
        np.testing.assert_array_equal(result.boxes, alone.boxes)
        np.testing.assert_array_equal(result.scores, alone.scores)


def test_the_single_pass_is_a_protocol_of_one_pass_with_the_presets_geometry() -> None:
    from facescope.inference.tta import ResizeTransform, run_plans, single_pass_protocol
    from facescope.models.spec import InputSpec, ResizeSpec

    spec = single_pass_protocol(0.4, 1.0)
    assert (spec.name, spec.merge, spec.flip, spec.pass_nms_iou, spec.pass_nms_pixel_offset) == ("none", None, False, 0.4, 1.0)
    resize = ResizeSpec("letterbox", (64, 64))
    (plan,) = plan_passes(spec, (96, 128), resize=resize, input_spec=InputSpec(size_divisor=32))
    assert isinstance(plan.transform, ResizeTransform)
    assert (plan.target_hw, plan.transform.plan.input_hw, plan.transform.plan.scale_xy) == ((48, 64), (64, 64), (0.5, 0.5))
    # two overlapping candidates in pass pixels: the preset's NMS keeps one, mapped back by the scale
    boxes = np.array([[2, 2, 12, 12], [3, 2, 13, 12], [30, 20, 40, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    (result,) = run_plans(spec, [_scene()], [[plan]], lambda images, plans: [(boxes, scores, None)])
    np.testing.assert_array_equal(result.scores, scores[[0, 2]])
    np.testing.assert_array_equal(result.boxes, [[4, 4, 24, 24], [60, 40, 80, 60]])
    with pytest.raises(ValueError, match="give resize= and input_spec="):
        plan_passes(spec, (96, 128))


def test_run_tta_with_nms_and_a_size_filter() -> None:
    # 2x keeps small faces only (min side + 1 < 100 in original pixels), 0.5x big ones only (max side + 1 > 30).
    spec = TTASpec(
        name="test",
        scales=Factors((0.5, 2.0), base="original", size_filters=(SizeFilter("big", 30.0), SizeFilter("small", 100.0))),
        flip=False,
        merge=MergeSpec("nms", iou=0.4),
    )
    seen: list[int] = []

    def run_pass(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = fake_run_pass(image)
        seen.append(len(out[0]))
        return out

    result = run_tta(spec, _scene(), run_pass)
    assert seen == [2, 2]
    # face B (13 + 1 wide) is dropped from the 0.5x pass, kept from the 2x one; face A from both; NMS keeps 2.
    np.testing.assert_allclose(result.boxes[np.argsort(result.boxes[:, 0])], FACES, atol=1e-4)
    np.testing.assert_allclose(sorted(result.scores), [0.5 + 24 / 200, 0.5 + 80 / 200], atol=1e-6)


def test_run_tta_drop_policy_discards_faces_seen_once() -> None:
    spec = TTASpec(name="test", scales=Factors((1.0,)), flip=False, merge=MergeSpec("box_voting", 0.3, "drop"))
    result = run_tta(spec, _scene(), fake_run_pass)
    assert result.boxes.shape == (0, 4) and result.landmarks is not None and result.landmarks.shape == (0, 5, 2)


def test_run_tta_reports_the_budget_cap() -> None:
    result = run_tta(get_tta_protocol("flip"), _scene(), fake_run_pass, max_pixels=96 * 128 // 4)
    assert len(result.notes) == 2 and all("capped to x0.5 (64x48)" in note for note in result.notes)
    assert [p.target_hw for p in result.passes] == [(48, 64), (48, 64)]
    np.testing.assert_allclose(result.boxes[np.argsort(result.boxes[:, 0])], FACES, atol=1e-4)


def test_pass_rules_and_union_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [80, 80, 90, 90]], np.float32)
    scores = np.array([0.9, 0.8, 0.005, 0.05], np.float32)
    dsfd = get_tta_protocol("dsfd")  # score >= 0.01, top 5000, NMS 0.3
    kept = apply_pass_rules(dsfd, (boxes, scores, None), (100, 100))
    np.testing.assert_allclose(kept[1], [0.9, 0.05])  # 0.005 below threshold; box 1 suppressed (IoU 0.82)
    spec = TTASpec(
        name="test", scales=Factors((1.0,)), flip=False, merge=MergeSpec("box_voting", 0.4, "keep"),
        union_score_threshold=0.05,
    )
    result = run_tta(spec, _scene(), lambda image: (boxes, scores, None))
    np.testing.assert_allclose(result.scores, [0.9])  # 0.8 merged into it; 0.05 is not > 0.05
    expected = [[(0.9 * 0 + 0.8 * 1) / 1.7, 0, (0.9 * 10 + 0.8 * 11) / 1.7, 10]]
    np.testing.assert_allclose(result.boxes, expected, atol=1e-5)


def test_shf_clips_each_pass_to_its_image() -> None:
    boxes = np.array([[-5, 10, 30, 120], [90, -2, 130, 20]], np.float32)
    clipped = apply_pass_rules(get_tta_protocol("shf"), (boxes, np.array([0.5, 0.4], np.float32), None), (100, 120))
    np.testing.assert_array_equal(clipped[0], [[0, 10, 30, 100], [90, 0, 120, 20]])
    retinaface = get_tta_protocol("retinaface")
    unclipped = apply_pass_rules(retinaface, (boxes, np.array([0.5, 0.4], np.float32), None), (100, 120))
    np.testing.assert_array_equal(unclipped[0], boxes)


def test_bad_pass_output_is_named() -> None:
    with pytest.raises(ValueError, match=r"TTA pass 0 \(scale\).*landmarks"):
        run_tta(get_tta_protocol("flip"), _scene(), lambda image: (BOX, np.ones(1), np.zeros((1, 4, 2))))


@pytest.mark.parametrize("module", [tta_module, tta_transforms_module, tta_specs_module, voting_module])
def test_modules_import_no_torch(module: object) -> None:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] in ("torch", "torchvision")]
