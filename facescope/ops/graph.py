"""Graph operators for mesh convolutions: Laplacians, Chebyshev polynomial filtering, sparse products.

Graph convolution (Defferrard et al. 2016, used by RetinaFace's mesh decoder, paper Eq. 2):
``y = sum_{k<K} theta_k T_k(L~) x`` with the scaled Laplacian ``L~ = 2 L / lambda_max - I`` and
the Chebyshev recursion ``T_0 x = x``, ``T_1 x = L~ x``, ``T_k x = 2 L~ T_{k-1} x - T_{k-2} x``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def graph_laplacian(edges: Tensor, num_vertices: int) -> Tensor:
    """Combinatorial Laplacian ``L = D - E`` of an undirected graph as a sparse COO ``Tensor[n, n]``.

    Args:
        edges: ``Tensor[E, 2]`` int64 vertex pairs (either direction; duplicates and self-loops ignored).
        num_vertices: ``n``.
    """
    edges = edges.to(torch.int64)
    edges = edges[edges[:, 0] != edges[:, 1]]
    both = torch.cat([edges, edges.flip(1)], dim=0)
    both = torch.unique(both, dim=0)
    degree = torch.bincount(both[:, 0], minlength=num_vertices).to(torch.float64)
    diag = torch.arange(num_vertices).repeat(2, 1)
    indices = torch.cat([both.T, diag], dim=1)
    values = torch.cat([-torch.ones(both.shape[0], dtype=torch.float64), degree])
    return torch.sparse_coo_tensor(indices, values, (num_vertices, num_vertices), check_invariants=True).coalesce()


def largest_eigenvalue(laplacian: Tensor) -> float:
    """``lambda_max`` of a symmetric sparse Laplacian (dense solver for small graphs, Lanczos otherwise)."""
    n = laplacian.shape[0]
    if n <= 2048:
        return float(torch.linalg.eigvalsh(laplacian.to_dense().to(torch.float64)).max())
    import scipy.sparse
    import scipy.sparse.linalg

    indices = laplacian.indices().numpy()
    matrix = scipy.sparse.coo_matrix((laplacian.values().numpy(), (indices[0], indices[1])), shape=(n, n)).tocsr()
    return float(scipy.sparse.linalg.eigsh(matrix, k=1, which="LA", return_eigenvectors=False)[0])


def scaled_laplacian(laplacian: Tensor, lambda_max: float | None = None) -> Tensor:
    """``L~ = 2 L / lambda_max - I`` (eigenvalues in ``[-1, 1]``) as a sparse float32 ``Tensor[n, n]``."""
    n = laplacian.shape[0]
    lam = largest_eigenvalue(laplacian) if lambda_max is None else float(lambda_max)
    if lam <= 0:
        lam = 2.0  # a graph without edges: L = 0, any positive scale gives L~ = -I
    eye = torch.sparse_coo_tensor(torch.arange(n).repeat(2, 1), torch.ones(n, dtype=torch.float64), (n, n), check_invariants=True)
    return ((laplacian * (2.0 / lam)) - eye).coalesce().to(torch.float32)


def sparse_vertex_matmul(matrix: Tensor, x: Tensor) -> Tensor:
    """Apply a sparse ``Tensor[m, n]`` to the vertex axis of ``Tensor[B, n, C]`` -> ``Tensor[B, m, C]``."""
    batch, n, channels = x.shape
    # (B, n, C) -> (n, B, C) -> (n, B*C)
    flat = x.permute(1, 0, 2).reshape(n, batch * channels)
    out = torch.sparse.mm(matrix, flat)
    # (m, B*C) -> (m, B, C) -> (B, m, C)
    return out.reshape(matrix.shape[0], batch, channels).permute(1, 0, 2)


def chebyshev_basis(scaled_lap: Tensor, x: Tensor, order: int) -> Tensor:
    """``[T_0(L~) x, ..., T_{K-1}(L~) x]`` by the Chebyshev recursion.

    Args:
        scaled_lap: sparse ``Tensor[n, n]`` scaled Laplacian.
        x: ``Tensor[B, n, C]`` vertex features.
        order: ``K >= 1``.

    Returns:
        ``Tensor[K, B, n, C]``.
    """
    if order < 1:
        raise ValueError(f"Chebyshev order must be >= 1, got {order}")
    terms = [x]
    if order > 1:
        terms.append(sparse_vertex_matmul(scaled_lap, x))
    for _ in range(2, order):
        terms.append(2 * sparse_vertex_matmul(scaled_lap, terms[-1]) - terms[-2])
    return torch.stack(terms)


def edges_from_faces(faces: np.ndarray | Tensor) -> Tensor:
    """Unique undirected edges ``Tensor[E, 2]`` (i < j) of a triangle list ``[F, 3]``."""
    faces_t = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    pairs = torch.cat([faces_t[:, [0, 1]], faces_t[:, [1, 2]], faces_t[:, [2, 0]]], dim=0)
    pairs = torch.sort(pairs, dim=1).values
    return torch.unique(pairs, dim=0)
