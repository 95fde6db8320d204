"""A small differentiable renderer for coloured meshes: pose, perspective projection, Lambertian
point-light shading and bilinear point splatting.

What it is, honestly: every vertex is projected and *splatted* into the 4 nearest pixels with
bilinear weights, each weighted by a soft depth order (``exp(-(z - z_min) / depth_softness)``) and
by how much its normal faces the camera; a pixel's colour is the weighted mean of the vertex
colours, its coverage ``1 - exp(-k * sum of weights)``. Gradients flow to colours, positions,
camera and light. It is not a triangle rasteriser: triangles do not occlude each other, and a
mesh sparser than the pixel grid leaves holes. The paper used the renderer of Genova et al. [14];
this is a lightweight stand-in with the same inputs and outputs.

Conventions: camera at the origin looking along +z; image x to the right, y down; normalised
image coordinates in ``[-1, 1]`` (pixel centres at ``(2 i + 1) / S - 1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def euler_rotation(angles: Tensor) -> Tensor:
    """``Tensor[K, 3]`` rotations about x, y, z (radians) -> ``Tensor[K, 3, 3]`` matrices ``Rz Ry Rx``."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals: ``Tensor[K, n, 3]``, faces ``Tensor[F, 3]`` -> ``Tensor[K, n, 3]``."""
    v0, v1, v2 = (vertices[:, faces[:, i]] for i in range(3))
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)  # [K, F, 3], length = 2 * area
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals = normals.index_add(1, faces[:, i], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-8)


def project_perspective(points: Tensor, focal: Tensor, min_depth: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Pinhole projection of camera-space ``Tensor[K, n, 3]`` with focal ``Tensor[K]``.

    Returns:
        ``uv Tensor[K, n, 2]`` normalised image coordinates and ``depth Tensor[K, n]``.
    """
    depth = points[..., 2].clamp(min=min_depth)
    uv = focal[:, None, None] * points[..., :2] / depth[..., None]
    return uv, depth


def shade_lambert(
    points: Tensor, normals: Tensor, albedo: Tensor, light_position: Tensor, light_color: Tensor, ambient: Tensor
) -> Tensor:
    """``albedo * (ambient + light_color * max(0, n . l))`` with a point light.

    Args:
        points, normals, albedo: camera-space ``Tensor[K, n, 3]``.
        light_position, light_color, ambient: ``Tensor[K, 3]``.
    """
    to_light = F.normalize(light_position[:, None, :] - points, dim=-1, eps=1e-8)
    lambert = (normals * to_light).sum(-1, keepdim=True).clamp(min=0)
    return albedo * (ambient[:, None, :] + light_color[:, None, :] * lambert)


def splat(
    uv: Tensor,
    depth: Tensor,
    colors: Tensor,
    visibility: Tensor,
    image_size: int,
    depth_softness: float = 0.05,
    coverage_gain: float = 4.0,
) -> Tensor:
    """Bilinear point splatting with soft depth ordering.

    Args:
        uv: ``Tensor[K, n, 2]`` normalised coordinates; depth ``Tensor[K, n]``.
        colors: ``Tensor[K, n, C]`` vertex colours.
        visibility: ``Tensor[K, n]`` in ``[0, 1]`` (e.g. front-facing weight).
        image_size: ``S``; the output is ``S x S``.
        depth_softness: larger = nearer vertices dominate less.
        coverage_gain: how quickly coverage saturates with splat weight.

    Returns:
        ``Tensor[K, C, S, S]`` colour times coverage (background 0).
    """
    k, _, channels = colors.shape
    size = image_size
    pixel = (uv + 1) * (size / 2) - 0.5  # continuous pixel coordinates, centres at integers
    base = torch.floor(pixel.detach())
    frac = pixel - base
    near = torch.exp(-(depth - depth.detach().min(dim=1, keepdim=True).values) / depth_softness)
    weight_sum = colors.new_zeros((k, size * size))
    coverage_sum = colors.new_zeros((k, size * size))
    color_sum = colors.new_zeros((k, size * size, channels))
    for dx in (0, 1):
        for dy in (0, 1):
            wx = frac[..., 0] if dx else 1 - frac[..., 0]
            wy = frac[..., 1] if dy else 1 - frac[..., 1]
            x, y = base[..., 0] + dx, base[..., 1] + dy
            inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            w = wx * wy * visibility * inside
            index = (y.clamp(0, size - 1) * size + x.clamp(0, size - 1)).long()  # [K, n]
            weight_sum = weight_sum.scatter_add(1, index, w * near)
            color_sum = color_sum.scatter_add(1, index[..., None].expand(-1, -1, channels), (w * near)[..., None] * colors)
            coverage_sum = coverage_sum.scatter_add(1, index, w)
    mean_color = color_sum / (weight_sum[..., None] + 1e-8)
    coverage = 1 - torch.exp(-coverage_gain * coverage_sum)
    image = mean_color * coverage[..., None]
    # (K, S*S, C) -> (K, S, S, C) -> (K, C, S, S)
    return image.reshape(k, size, size, channels).permute(0, 3, 1, 2)
