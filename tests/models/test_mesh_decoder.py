"""Dense-regression branch: mesh topology files, ChebConv, decoder shapes, rendering, pixel loss, gradients."""

import numpy as np
import pytest
import torch

from facescope.errors import DataError
from facescope.losses.pixel import pixel_l1_loss
from facescope.models.heads.mesh_decoder import ChebConv, DenseRegressionBranch
from facescope.models.mesh_topology import icosphere_topology, load_mesh_topology, save_mesh_topology
from facescope.ops.graph import graph_laplacian, scaled_laplacian


def test_icosphere_topology_levels_and_upsampling():
    topology = icosphere_topology(3)
    assert topology.num_vertices == (12, 42, 162)
    assert [len(e) for e in topology.edges] == [30, 120, 480]
    assert topology.faces.shape == (320, 3)
    for up in topology.upsampling:
        row_sums = torch.sparse.sum(up, dim=1).to_dense()
        assert torch.allclose(row_sums, torch.ones_like(row_sums))  # copies and edge midpoints
    assert torch.allclose(topology.template.norm(dim=1), torch.ones(162))


def test_topology_file_round_trip_and_clear_errors(tmp_path):
    path = save_mesh_topology(icosphere_topology(2), tmp_path / "mesh.npz")
    loaded = load_mesh_topology(path)
    assert loaded.num_vertices == (12, 42)
    assert torch.equal(loaded.faces, icosphere_topology(2).faces)
    broken = tmp_path / "broken.npz"
    with np.load(path) as data:
        np.savez(broken, **{k: data[k] for k in data if k != "up0_values"})
    with pytest.raises(DataError, match=r"broken.npz: key 'up0_values' missing"):
        load_mesh_topology(broken)
    with pytest.raises(DataError, match="not found"):
        load_mesh_topology(tmp_path / "nope.npz")


def test_chebconv_is_the_weighted_sum_of_chebyshev_terms():
    scaled = scaled_laplacian(graph_laplacian(torch.tensor([[0, 1], [1, 2]]), 3))
    conv = ChebConv(1, 1, order=3, scaled_lap=scaled)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, 3.0, 5.0]).view(3, 1, 1))
        conv.bias.fill_(0.5)
    y = conv(torch.tensor([[[1.0], [0.0], [0.0]]]))
    # 2 * (1, 0, 0) + 3 * (-1/3, -2/3, 0) + 5 * (1/9, 0, 8/9) + 0.5
    expected = torch.tensor([2 - 1 + 5 / 9, -2.0, 40 / 9]) + 0.5
    torch.testing.assert_close(y[0, :, 0], expected)


def test_decoder_and_renderer_shapes_and_gradients():
    torch.manual_seed(0)
    branch = DenseRegressionBranch(icosphere_topology(3), order=3, crop_size=16)
    assert branch.num_params == 144
    vertices, colors = branch.decoder(torch.randn(2, 128))
    assert vertices.shape == (2, 162, 3) and colors.shape == (2, 162, 3)
    params = (torch.randn(2, 144) * 0.1).requires_grad_()
    images = torch.randn(1, 3, 40, 40, requires_grad=True)
    loss = pixel_l1_loss(*branch.render_and_crop(images, torch.tensor([0, 0]), torch.tensor([[4.0, 4.0, 30.0, 34.0], [0, 0, 40, 40]]), params))
    assert loss.item() > 0
    loss.backward()
    grad = params.grad.abs()
    assert grad[:, :128].sum() > 0 and grad[:, 128:135].sum() > 0 and grad[:, 135:].sum() > 0  # code, camera, light
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in branch.parameters())


def test_zero_prediction_renders_the_template_frontally_into_the_crop():
    branch = DenseRegressionBranch(icosphere_topology(4), order=2, crop_size=16)
    torch.nn.init.zeros_(branch.decoder.out_conv.weight)  # decoder outputs exactly the template
    with torch.no_grad():
        image = branch.render(torch.zeros(1, 144))
    assert image.shape == (1, 3, 16, 16)
    branch.decoder.template_colors.fill_(1.0)
    with torch.no_grad():
        lit = branch.render(torch.zeros(1, 144))
    # The centre faces the light at the camera: albedo * (0.5 ambient + 0.5 * cos ~1) = 1, times a
    # coverage that depends on the vertex density (642 vertices: ~1 per pixel -> 1 - exp(-1)).
    assert 0.6 < lit[0, 0, 7:9, 7:9].mean().item() <= 1.0
    # The unit sphere at distance 3 with focal 3 has a silhouette radius of 3 / sqrt(8) = 1.06 < sqrt(2):
    # the corners stay background.
    assert lit[0, :, 0, 0].abs().max().item() == 0.0 and lit[0, :, 15, 15].abs().max().item() == 0.0


def test_pixel_loss_is_zero_for_identical_images_and_l1_over_channels():
    target = torch.rand(3, 3, 8, 8)
    assert pixel_l1_loss(target.clone(), target).item() == 0.0
    # every pixel differs by 1 in each of 3 channels -> 3 per pixel, averaged over W * H and crops
    assert pixel_l1_loss(torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)).item() == pytest.approx(3.0)
    empty = torch.zeros(0, 3, 4, 4, requires_grad=True)
    assert pixel_l1_loss(empty, torch.zeros(0, 3, 4, 4)).item() == 0.0
