"""RetinaFace's self-supervised dense-regression branch (paper Sec. 3.2).

Per positive anchor the shared head predicts ``P_ST`` (128-d joint shape and texture code),
``P_cam`` (7: camera location ``x, y, z``, pose ``x', y', z'`` and focal length) and ``P_ill``
(9: point-light location, light colour, ambient colour). A graph-convolution mesh decoder
(Chebyshev filters on the mesh Laplacian, mesh up-sampling between resolutions) turns ``P_ST`` into
per-vertex shape and texture; :mod:`facescope.ops.render` renders the coloured mesh into an
``S x S`` image that is compared with the anchor's crop of the input (pixel loss, Eq. 3).

Parametrisation of the raw predictions (so that a zero prediction renders the template frontally,
filling the crop): camera location ``(x, y, z0 + z)``, Euler pose ``(x', y', z')`` radians, focal
``z0 * exp(f)``; light at ``(x_l, y_l, z_l)`` in camera space (the camera position at zero), light
colour ``0.5 + rgb_l``, ambient ``0.5 + rgb_a``. Textures are in the units of the network input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from facescope.models.mesh_topology import MeshTopology
from facescope.ops.graph import chebyshev_basis, graph_laplacian, scaled_laplacian, sparse_vertex_matmul
from facescope.ops.render import euler_rotation, project_perspective, shade_lambert, splat, vertex_normals

CODE_DIM, CAMERA_DIM, ILLUMINATION_DIM = 128, 7, 9


class ChebConv(nn.Module):
    """Graph convolution ``y = sum_k T_k(L~) x W_k + b`` (``K x C_in x C_out`` weights, paper Fig. 3b).

    Args:
        in_channels, out_channels: feature widths.
        order: ``K``, the number of Chebyshev terms.
        scaled_lap: sparse ``Tensor[n, n]`` scaled Laplacian of the graph.
    """

    def __init__(self, in_channels: int, out_channels: int, order: int, scaled_lap: Tensor) -> None:
        super().__init__()
        self.order = order
        self.weight = nn.Parameter(torch.empty(order, in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.weight.view(order * in_channels, out_channels))
        self.register_buffer("scaled_laplacian", scaled_lap, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[B, n, C_in]`` -> ``Tensor[B, n, C_out]``."""
        basis = chebyshev_basis(self.scaled_laplacian, x, self.order)  # [K, B, n, C_in]
        return torch.einsum("kbnc,kco->bno", basis, self.weight) + self.bias


class MeshDecoder(nn.Module):
    """Joint shape + texture decoder: FC to the coarsest mesh, then (up-sample, ChebConv, ELU) per level.

    Args:
        topology: the multi-resolution mesh.
        code_dim: length of the latent code (128).
        channels: feature width per level, coarse to fine (default 64, 32, 16, ...).
        order: Chebyshev order ``K``.

    Returns (forward):
        ``vertices Tensor[K, n, 3]`` (template + offsets) and ``colors Tensor[K, n, 3]``.
    """

    def __init__(self, topology: MeshTopology, code_dim: int = CODE_DIM, channels: Sequence[int] | None = None, order: int = 6) -> None:
        super().__init__()
        levels = len(topology.num_vertices)
        channels = tuple(channels) if channels is not None else tuple(max(64 >> l, 8) for l in range(levels))
        if len(channels) != levels:
            raise ValueError(f"{len(channels)} channel widths for a {levels}-level mesh")
        laps = [scaled_laplacian(graph_laplacian(e, n)) for e, n in zip(topology.edges, topology.num_vertices)]
        self.num_coarse = topology.num_vertices[0]
        self.fc = nn.Linear(code_dim, self.num_coarse * channels[0])
        self.convs = nn.ModuleList(ChebConv(channels[l - 1], channels[l], order, laps[l]) for l in range(1, levels))
        self.out_conv = ChebConv(channels[-1], 6, order, laps[-1])
        for l, up in enumerate(topology.upsampling):
            self.register_buffer(f"up{l}", up.to(torch.float32), persistent=False)
        self.register_buffer("template", topology.template.clone(), persistent=False)
        self.register_buffer("template_colors", topology.template_colors.clone(), persistent=False)

    def forward(self, code: Tensor) -> tuple[Tensor, Tensor]:
        # (K, n0 * C0) -> (K, n0, C0)
        x = F.elu(self.fc(code)).reshape(code.shape[0], self.num_coarse, -1)
        for l, conv in enumerate(self.convs):
            x = F.elu(conv(sparse_vertex_matmul(getattr(self, f"up{l}"), x)))
        out = self.out_conv(x)  # [K, n, 6]
        return self.template + out[..., :3], self.template_colors + out[..., 3:]


class DenseRegressionBranch(nn.Module):
    """Mesh decoder + renderer + pixel loss for the paper's RetinaFace.

    Args:
        topology: mesh topology (:func:`~facescope.models.mesh_topology.load_mesh_topology`).
        channels, order: of the :class:`MeshDecoder`.
        crop_size: side of the rendered / cropped square.
        camera_distance: ``z0`` of the camera parametrisation.
    """

    num_params = CODE_DIM + CAMERA_DIM + ILLUMINATION_DIM

    def __init__(
        self,
        topology: MeshTopology,
        channels: Sequence[int] | None = None,
        order: int = 6,
        crop_size: int = 32,
        camera_distance: float = 3.0,
    ) -> None:
        super().__init__()
        self.decoder = MeshDecoder(topology, CODE_DIM, channels, order)
        self.register_buffer("faces", topology.faces.clone(), persistent=False)
        self.crop_size = crop_size
        self.camera_distance = camera_distance

    def render(self, params: Tensor) -> Tensor:
        """``Tensor[K, 144]`` predictions -> ``Tensor[K, 3, S, S]`` renderings."""
        code, camera, light = params.split((CODE_DIM, CAMERA_DIM, ILLUMINATION_DIM), dim=1)
        vertices, albedo = self.decoder(code)
        location = camera[:, :3] + camera.new_tensor([0.0, 0.0, self.camera_distance])
        rotation = euler_rotation(camera[:, 3:6])
        points = vertices @ rotation.transpose(1, 2) + location[:, None, :]
        normals = vertex_normals(points, self.faces)
        facing = torch.sigmoid(-10.0 * (normals * F.normalize(points, dim=-1)).sum(-1))
        colors = shade_lambert(points, normals, albedo, light[:, :3], 0.5 + light[:, 3:6], 0.5 + light[:, 6:9])
        uv, depth = project_perspective(points, self.camera_distance * torch.exp(camera[:, 6]))
        return splat(uv, depth, colors, facing, self.crop_size)

    def render_and_crop(self, images: Tensor, batch_index: Tensor, boxes: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """The renderings of ``params`` and the boxes' crops of the input, which the pixel loss compares
        (:class:`~facescope.losses.pixel.PixelLoss`, paper Eq. 3).

        Args:
            images: ``Tensor[B, 3, H, W]`` network input.
            batch_index: ``Tensor[K]`` image of each crop.
            boxes: ``Tensor[K, 4]`` crop boxes (the matched faces) in input pixels.
            params: ``Tensor[K, 144]`` predictions of the anchors.

        Returns:
            ``(Tensor[K, 3, S, S] renderings, Tensor[K, 3, S, S] crops)``.
        """
        rois = torch.cat([batch_index[:, None].to(boxes), boxes], dim=1)
        crops = roi_align(images, rois, self.crop_size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        return self.render(params), crops
