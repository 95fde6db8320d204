"""Graph Laplacian and Chebyshev filtering on a hand-computable path graph 0 - 1 - 2."""

import pytest
import torch

from facescope.ops.graph import chebyshev_basis, edges_from_faces, graph_laplacian, scaled_laplacian, sparse_vertex_matmul

PATH_EDGES = torch.tensor([[0, 1], [1, 2], [2, 1], [1, 1]])  # a reversed duplicate and a self-loop are ignored


def test_laplacian_is_degree_minus_adjacency():
    lap = graph_laplacian(PATH_EDGES, 3).to_dense()
    assert lap.tolist() == [[1, -1, 0], [-1, 2, -1], [0, -1, 1]]


def test_scaled_laplacian_uses_lambda_max():
    # eigenvalues of L are 0, 1, 3 -> L~ = 2 L / 3 - I
    scaled = scaled_laplacian(graph_laplacian(PATH_EDGES, 3)).to_dense()
    third = 1 / 3
    expected = torch.tensor([[-third, -2 * third, 0], [-2 * third, third, -2 * third], [0, -2 * third, -third]])
    torch.testing.assert_close(scaled, expected)


def test_chebyshev_recursion_matches_hand_values():
    scaled = scaled_laplacian(graph_laplacian(PATH_EDGES, 3))
    x = torch.tensor([[[1.0], [0.0], [0.0]]])  # [B=1, n=3, C=1]
    basis = chebyshev_basis(scaled, x, order=3)
    assert basis.shape == (3, 1, 3, 1)
    # T0 x = x; T1 x = L~ x = (-1/3, -2/3, 0); T2 x = 2 L~ T1 x - x = (1/9, 0, 8/9)
    torch.testing.assert_close(basis[:, 0, :, 0], torch.tensor([[1.0, 0, 0], [-1 / 3, -2 / 3, 0], [1 / 9, 0, 8 / 9]]))


def test_chebyshev_basis_equals_explicit_polynomials_on_a_batch():
    torch.manual_seed(0)
    scaled = scaled_laplacian(graph_laplacian(torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]]), 4))
    dense = scaled.to_dense()
    x = torch.randn(2, 4, 3)
    basis = chebyshev_basis(scaled, x, order=4)
    t3 = 4 * dense @ dense @ dense - 3 * dense  # T3(y) = 4 y^3 - 3 y
    torch.testing.assert_close(basis[3], torch.einsum("ij,bjc->bic", t3, x), atol=1e-5, rtol=1e-5)


def test_sparse_vertex_matmul_and_edges_from_faces():
    up = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]).to_sparse()
    x = torch.tensor([[[2.0, 4.0], [6.0, 8.0]]])
    assert sparse_vertex_matmul(up, x).tolist() == [[[2.0, 4.0], [4.0, 6.0], [6.0, 8.0]]]
    assert edges_from_faces(torch.tensor([[0, 1, 2], [2, 1, 3]])).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order"):
        chebyshev_basis(scaled_laplacian(graph_laplacian(PATH_EDGES, 3)), torch.zeros(1, 3, 1), 0)
