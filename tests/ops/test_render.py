"""The point-splatting renderer: geometry helpers and hand cases."""

import math

import pytest
import torch

from facescope.ops.render import euler_rotation, project_perspective, shade_lambert, splat, vertex_normals


def test_euler_rotation():
    assert torch.allclose(euler_rotation(torch.zeros(1, 3)), torch.eye(3)[None])
    quarter_z = euler_rotation(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    torch.testing.assert_close(quarter_z @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6, rtol=0)


def test_projection_and_lambert_shading():
    points = torch.tensor([[[0.0, 0.0, 2.0], [1.0, -0.5, 4.0]]])
    uv, depth = project_perspective(points, torch.tensor([2.0]))
    assert uv.tolist() == [[[0.0, 0.0], [0.5, -0.25]]] and depth.tolist() == [[2.0, 4.0]]
    normals = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]])
    albedo = torch.ones(1, 2, 3)
    # light at the camera: the first point's normal faces it exactly (cos 1)
    shaded = shade_lambert(points, normals, albedo, torch.zeros(1, 3), torch.full((1, 3), 0.5), torch.full((1, 3), 0.25))
    assert shaded[0, 0].tolist() == pytest.approx([0.75] * 3)
    cos = 4.0 / math.sqrt(1 + 0.25 + 16)
    assert shaded[0, 1].tolist() == pytest.approx([0.25 + 0.5 * cos] * 3)


def test_splatting_a_vertex_at_a_pixel_centre_fills_only_that_pixel():
    size = 4
    # pixel (row 1, column 2) has its centre at ((2 + 0.5) / 4 * 2 - 1, (1 + 0.5) / 4 * 2 - 1) = (0.25, -0.25)
    uv = torch.tensor([[[0.25, -0.25]]])
    image = splat(uv, torch.ones(1, 1), torch.tensor([[[0.2, 0.4, 0.6]]]), torch.ones(1, 1), size)
    assert image.shape == (1, 3, 4, 4)
    coverage = 1 - math.exp(-4.0)
    assert image[0, :, 1, 2].tolist() == pytest.approx([0.2 * coverage, 0.4 * coverage, 0.6 * coverage])
    assert image.sum().item() == pytest.approx(1.2 * coverage)


def test_nearer_vertex_dominates_a_shared_pixel_and_gradients_reach_positions():
    uv = torch.tensor([[[0.25, -0.25], [0.26, -0.25]]], requires_grad=True)
    colors = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    image = splat(uv, torch.tensor([[1.0, 1.5]]), colors, torch.ones(1, 2), 4)
    pixel = image[0, :, 1, 2]
    assert pixel[0] > 10 * pixel[2]  # depth 1 beats depth 1.5
    pixel.sum().backward()
    assert uv.grad.abs().sum() > 0


def test_vertex_normals_of_a_tetrahedron_point_outwards():
    vertices = torch.tensor([[[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    normals = vertex_normals(vertices, faces)
    cosines = (normals * torch.nn.functional.normalize(vertices, dim=-1)).sum(-1)
    assert torch.allclose(cosines, torch.ones(1, 4), atol=1e-5)
