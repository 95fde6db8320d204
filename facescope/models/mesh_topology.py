"""Mesh topology for the dense-regression (mesh decoder) branch, and its file format.

The paper's 28,431-vertex face mesh is not public, so the topology is an input file. Format
(``numpy.savez``, version key ``format = "facescope-mesh-topology-v1"``):

================================  ===================  ==========================================
key                               dtype / shape        meaning
================================  ===================  ==========================================
``format``                        str                  ``"facescope-mesh-topology-v1"``
``num_levels``                    int                  ``L`` resolutions, 0 = coarsest
``level{l}_num_vertices``         int                  ``n_l``
``level{l}_edges``                int64 ``[E_l, 2]``   undirected edges of level ``l``
``up{l}_rows`` / ``_cols``        int64 ``[nnz]``      sparse up-sampling ``U_l``: level ``l`` ->
``up{l}_values``                  float32 ``[nnz]``    ``l + 1`` (``n_{l+1} x n_l``), ``l < L-1``
``faces``                         int64 ``[F, 3]``     triangles of the finest level
``template``                      float32 ``[n, 3]``   mean shape of the finest level (about unit size,
                                                       centred at the origin)
``template_colors`` (optional)    float32 ``[n, 3]``   mean texture (default 0)
================================  ===================  ==========================================

:func:`icosphere_topology` builds a valid topology (a subdivided icosahedron whose up-sampling
puts each new vertex at the midpoint of its edge) for tests and experiments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facescope.errors import DataError
from facescope.models.options import ModelFile
from facescope.fileio import atomic_path
from facescope.ops.graph import edges_from_faces

FORMAT = "facescope-mesh-topology-v1"


@dataclass(frozen=True)
class MeshTopology:
    """Multi-resolution mesh graph.

    Attributes:
        num_vertices: ``n_l`` per level, coarse to fine.
        edges: ``Tensor[E_l, 2]`` per level.
        upsampling: sparse ``Tensor[n_{l+1}, n_l]`` per level transition.
        faces: ``Tensor[F, 3]`` triangles of the finest level.
        template: ``Tensor[n, 3]`` mean shape of the finest level.
        template_colors: ``Tensor[n, 3]`` mean texture.
    """

    num_vertices: tuple[int, ...]
    edges: tuple[Tensor, ...]
    upsampling: tuple[Tensor, ...]
    faces: Tensor
    template: Tensor
    template_colors: Tensor

    def __post_init__(self) -> None:
        levels = len(self.num_vertices)
        if levels < 1 or len(self.edges) != levels or len(self.upsampling) != levels - 1:
            raise DataError(f"mesh topology: {levels} levels but {len(self.edges)} edge sets and {len(self.upsampling)} up-samplings")
        for l, up in enumerate(self.upsampling):
            want = (self.num_vertices[l + 1], self.num_vertices[l])
            if tuple(up.shape) != want:
                raise DataError(f"mesh topology: up-sampling {l} has shape {tuple(up.shape)}, expected {want}")
        n = self.num_vertices[-1]
        if tuple(self.template.shape) != (n, 3) or tuple(self.template_colors.shape) != (n, 3):
            raise DataError(f"mesh topology: template must be [{n}, 3], got {tuple(self.template.shape)}")
        if self.faces.numel() and int(self.faces.max()) >= n:
            raise DataError(f"mesh topology: a face refers to vertex {int(self.faces.max())} of {n}")


def save_mesh_topology(topology: MeshTopology, path: str | Path) -> Path:
    """Write ``topology`` atomically in the documented ``.npz`` format."""
    arrays: dict[str, np.ndarray] = {"format": np.array(FORMAT), "num_levels": np.array(len(topology.num_vertices))}
    for l, (n, edges) in enumerate(zip(topology.num_vertices, topology.edges)):
        arrays[f"level{l}_num_vertices"] = np.array(n)
        arrays[f"level{l}_edges"] = edges.numpy().astype(np.int64)
    for l, up in enumerate(topology.upsampling):
        up = up.coalesce()
        arrays[f"up{l}_rows"], arrays[f"up{l}_cols"] = up.indices().numpy().astype(np.int64)
        arrays[f"up{l}_values"] = up.values().numpy().astype(np.float32)
    arrays["faces"] = topology.faces.numpy().astype(np.int64)
    arrays["template"] = topology.template.numpy().astype(np.float32)
    arrays["template_colors"] = topology.template_colors.numpy().astype(np.float32)
    path = Path(path)
    with atomic_path(path, ".npz") as tmp:
        np.savez(tmp, **arrays)
    return path


def load_mesh_topology(source: str | Path | ModelFile) -> MeshTopology:
    """Read a topology file (a path, or the content of a file-valued model option); a missing key or a
    wrong shape is a one-line :class:`DataError`."""
    if isinstance(source, ModelFile):
        path, stream = Path(source.name), source.open()
    else:
        path = stream = Path(source)
        if not path.is_file():
            raise DataError(f"mesh topology file not found: {path}")
    with np.load(stream, allow_pickle=False) as data:
        def get(key: str) -> np.ndarray:
            if key not in data:
                raise DataError(f"mesh topology {path}: key '{key}' missing (see facescope.models.mesh_topology)")
            return data[key]

        if str(get("format")) != FORMAT:
            raise DataError(f"mesh topology {path}: format '{get('format')}', expected '{FORMAT}'")
        levels = int(get("num_levels"))
        counts = tuple(int(get(f"level{l}_num_vertices")) for l in range(levels))
        edges = tuple(torch.from_numpy(get(f"level{l}_edges").astype(np.int64)).reshape(-1, 2) for l in range(levels))
        ups = tuple(
            torch.sparse_coo_tensor(
                torch.from_numpy(np.stack([get(f"up{l}_rows"), get(f"up{l}_cols")]).astype(np.int64)),
                torch.from_numpy(get(f"up{l}_values").astype(np.float32)),
                (counts[l + 1], counts[l]),
                check_invariants=True,  # indices come from a file: refuse out-of-range ones
            ).coalesce()
            for l in range(levels - 1)
        )
        template = torch.from_numpy(get("template").astype(np.float32))
        colors = data["template_colors"] if "template_colors" in data else np.zeros_like(template.numpy())
        faces = torch.from_numpy(get("faces").astype(np.int64)).reshape(-1, 3)
    try:
        return MeshTopology(counts, edges, ups, faces, template, torch.from_numpy(np.asarray(colors, np.float32)))
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def icosphere_topology(num_levels: int = 3) -> MeshTopology:
    """A unit icosphere subdivided ``num_levels - 1`` times (12, 42, 162, 642, ... vertices)."""
    vertices, faces = _icosahedron()
    all_edges = [edges_from_faces(faces)]
    counts = [len(vertices)]
    ups = []
    for _ in range(num_levels - 1):
        vertices, faces, up = _subdivide(vertices, faces)
        counts.append(len(vertices))
        all_edges.append(edges_from_faces(faces))
        ups.append(up)
    template = torch.from_numpy(vertices.astype(np.float32))
    return MeshTopology(
        tuple(counts), tuple(all_edges), tuple(ups), torch.from_numpy(faces), template, torch.zeros_like(template)
    )


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    phi = (1 + 5**0.5) / 2
    vertices = np.array(
        [[-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
         [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
         [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1]], dtype=np.float64,
    )  # fmt: skip
    faces = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
         [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64,
    )  # fmt: skip
    return vertices / np.linalg.norm(vertices, axis=1, keepdims=True), faces


def _subdivide(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """Split every triangle in four; new vertices sit at (normalised) edge midpoints."""
    n = len(vertices)
    midpoint: dict[tuple[int, int], int] = {}
    rows, cols, values = list(range(n)), list(range(n)), [1.0] * n
    new_vertices = [v for v in vertices]

    def middle(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in midpoint:
            midpoint[key] = len(new_vertices)
            m = (vertices[a] + vertices[b]) / 2
            new_vertices.append(m / np.linalg.norm(m))
            rows.extend([midpoint[key]] * 2)
            cols.extend([a, b])
            values.extend([0.5, 0.5])
        return midpoint[key]

    new_faces = []
    for a, b, c in faces:
        ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
        new_faces += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
    up = torch.sparse_coo_tensor(
        torch.tensor([rows, cols]), torch.tensor(values, dtype=torch.float32), (len(new_vertices), n), check_invariants=True
    ).coalesce()
    return np.array(new_vertices), np.array(new_faces, dtype=np.int64), up
