"""Face alignment to the ArcFace template."""

import math

import cv2
import numpy as np
import pytest
import torch

import facescope
from facescope.errors import FacescopeError
from facescope.inference.align import ARCFACE_TEMPLATE_112, alignment_matrices, arcface_template
from facescope.ops.similarity import umeyama_similarity
from facescope.structures import Detections


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _dot_face(size: int = 112) -> np.ndarray:
    """A 112x112 test card: a bright disc at each template point on a textured background."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    for x, y in ARCFACE_TEMPLATE_112:
        cv2.circle(image, (round(x), round(y)), 3, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    return image


def test_umeyama_recovers_an_exact_similarity_and_refuses_degenerate_input():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [3.0, 7.0], [-4.0, 2.0]])
    truth = _similarity(33.0, 1.7, 12.0, -5.0)
    np.testing.assert_allclose(umeyama_similarity(src, _apply(truth, src)), truth, atol=1e-10)
    with pytest.raises(ValueError, match="all equal"):
        umeyama_similarity(np.ones((5, 2)), np.zeros((5, 2)))


def test_landmarks_on_the_template_give_the_identity_and_the_image_back():
    matrix = alignment_matrices(ARCFACE_TEMPLATE_112)[0]
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    image = _dot_face()
    assert np.array_equal(facescope.align(image, ARCFACE_TEMPLATE_112), image)


def test_a_rotated_scaled_face_realigns_within_a_pixel():
    face = _dot_face()
    to_scene = _similarity(-35.0, 2.3, 180.0, 60.0)
    scene = cv2.warpAffine(face, to_scene, (520, 420), flags=cv2.INTER_LINEAR)
    landmarks = _apply(to_scene, ARCFACE_TEMPLATE_112)
    crop = facescope.align(scene, torch.tensor(landmarks, dtype=torch.float32))
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    # The estimated transform puts the landmarks on the template ...
    back = _apply(alignment_matrices(landmarks)[0], landmarks)
    assert np.abs(back - ARCFACE_TEMPLATE_112).max() < 1e-3
    # ... and the bright discs of the picture land within a pixel of the template points.
    gray = crop[..., 0].astype(np.float64)
    for x, y in ARCFACE_TEMPLATE_112:
        x0, y0 = int(x) - 6, int(y) - 6
        window = np.where(gray[y0 : y0 + 13, x0 : x0 + 13] > 128, gray[y0 : y0 + 13, x0 : x0 + 13], 0)
        ys, xs = np.mgrid[y0 : y0 + 13, x0 : x0 + 13]
        centroid = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
        assert np.hypot(*(centroid - [round(x), round(y)])) < 1.0


def test_several_faces_other_sizes_and_detections():
    image = _dot_face()
    dets = Detections(torch.zeros(2, 4), torch.ones(2), torch.tensor(np.stack([ARCFACE_TEMPLATE_112] * 2), dtype=torch.float32))
    crops = facescope.align(image, dets, size=224)
    assert crops.shape == (2, 224, 224, 3)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    np.testing.assert_allclose(alignment_matrices(dets, 224)[0], [[2, 0, 0], [0, 2, 0]], atol=1e-4)  # float32 points
    assert facescope.align(image, np.zeros((0, 5, 2))).shape == (0, 112, 112, 3)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(FacescopeError, match=r"landmarks must be \[5, 2\] or \[N, 5, 2\]"):
        facescope.align(_dot_face(), np.zeros((4, 2)))
    with pytest.raises(FacescopeError, match="no landmarks"):
        facescope.align(_dot_face(), Detections(torch.zeros(1, 4), torch.ones(1)))
