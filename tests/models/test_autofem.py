"""AutoFEM cells: partial channels, the one-path forward's gradients, genotypes as JSON, derivation."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from facescope.models.autofem import (
    CPM_OPS,
    AutoFEM,
    Genotype,
    PartialChannelMixedOp,
    SearchCPMCell,
    SearchFPNCell,
    architecture_parameters,
    channel_shuffle,
    default_genotype,
)


class Recorder(nn.Module):
    """Multiplies by ``factor`` and records the channel count of every call."""

    calls: list[tuple[str, int]] = []

    def __init__(self, name: str, factor: float) -> None:
        super().__init__()
        self.name, self.factor = name, factor

    def forward(self, x: Tensor) -> Tensor:
        Recorder.calls.append((self.name, x.shape[1]))
        return x * self.factor


def recording_ops(names: tuple[str, ...] = ("a", "b", "c")) -> dict:
    return {name: (lambda c, s, name=name, k=i + 2: Recorder(name, float(k))) for i, name in enumerate(names)}


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    # groups of 2 channels: [0 1][2 3][4 5][6 7] -> the first of every group, then the second
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_partial_channels_keep_a_quarter_and_shuffle_back():
    Recorder.calls.clear()
    edge = PartialChannelMixedOp(8, recording_ops(), partial=4)
    x = torch.arange(8.0).view(1, 8, 1, 1)
    out = edge(x, op_index=1)  # op "b" multiplies by 3
    assert Recorder.calls == [("b", 2)]  # only the chosen op ran, on 8 / 4 = 2 channels
    # [0, 1] -> [0, 3]; bypassed [2 .. 7]; shuffled in groups of 2: [0, 2, 4, 6, 3, 3, 5, 7]
    assert out.flatten().tolist() == [0.0, 2.0, 4.0, 6.0, 3.0, 3.0, 5.0, 7.0]


def test_improved_forward_runs_one_op_per_node_and_every_logit_gets_a_gradient():
    torch.manual_seed(0)
    Recorder.calls.clear()
    cell = SearchCPMCell(8, nodes=3, ops=recording_ops(), partial=4)
    with torch.no_grad():
        cell.alpha[2][1, 2] = 5.0  # node 3's strongest pair: input node 1, op "c"
    cell(torch.randn(2, 8, 4, 4)).sum().backward()
    assert len(Recorder.calls) == 3  # one op for each of the three nodes
    assert Recorder.calls[2] == ("c", 2)
    for node in range(3):
        assert cell.alpha[node].grad is not None and bool((cell.alpha[node].grad != 0).all()), node
        assert bool((cell.beta[node].grad != 0).all()), node
    assert {id(p) for p in architecture_parameters(cell)} == {id(p) for p in [*cell.alpha, *cell.beta]}


def test_the_fpn_search_cell_runs_one_op_per_edge_and_its_logits_get_gradients():
    torch.manual_seed(0)
    Recorder.calls.clear()
    cell = SearchFPNCell(8, levels=3, ops=recording_ops(), partial=4)
    with torch.no_grad():
        cell.alpha[2 * 1 + 0][1] = 5.0  # level 1's edge from the finer level: op "b"
    features = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)]
    outputs = cell(features)
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
    # 4 neighbour edges (level 0 has no finer neighbour, level 2 no coarser one), one op each, on 8 / 4 channels
    assert len(Recorder.calls) == 4 and all(channels == 2 for _, channels in Recorder.calls)
    assert ("b", 2) in Recorder.calls
    sum(o.sum() for o in outputs).backward()
    used = [2 * 0 + 1, 2 * 1 + 0, 2 * 1 + 1, 2 * 2 + 0]  # (level, side) edges that exist
    assert all(cell.alpha[i].grad is not None and bool((cell.alpha[i].grad != 0).all()) for i in used)
    assert cell.derive()[1][0] == "b" and cell.derive()[0][0] == "none" and cell.derive()[2][1] == "none"


def test_the_architecture_gradient_comes_from_the_ops_output_only_not_the_bypassed_channels():
    # the chosen op is "none" (zeros): the node's output does not depend on its weight, so no logit may move
    cell = SearchCPMCell(8, nodes=1, ops={"none": CPM_OPS["none"], "skip": CPM_OPS["skip"]}, partial=4)
    with torch.no_grad():
        cell.alpha[0][0, 0] = 5.0
    cell(torch.randn(2, 8, 4, 4)).square().sum().backward()
    assert torch.equal(cell.alpha[0].grad, torch.zeros_like(cell.alpha[0])) and torch.equal(cell.beta[0].grad, torch.zeros(1))


def test_straight_through_factor_keeps_the_op_value():
    cell = SearchCPMCell(4, nodes=1, ops=recording_ops(("a",)), partial=4)
    x = torch.ones(1, 4, 2, 2)
    state = cell.edges[0][0](x, 0) * (1.0 + cell.node_weights(0)[0, 0] - cell.node_weights(0)[0, 0].detach())
    assert torch.equal(state, cell.edges[0][0](x, 0))  # the factor is exactly 1 in value


def test_derive_takes_the_two_strongest_inputs_with_their_strongest_op():
    cell = SearchCPMCell(8, nodes=3, ops={k: CPM_OPS[k] for k in ("none", "skip", "sep3x3", "conv1x1")})
    with torch.no_grad():
        for a in cell.alpha:
            a.zero_()
        cell.alpha[2][0, 0] = 9.0  # "none" is never derived
        cell.alpha[2][2, 2] = 3.0  # input 2 via sep3x3
        cell.alpha[2][1, 3] = 2.0  # input 1 via conv1x1
    node3 = cell.derive()[2]
    assert node3 == (("conv1x1", 1), ("sep3x3", 2))


def test_genotype_round_trips_through_json_to_the_same_module_graph():
    genotype = default_genotype()
    again = Genotype.from_json(genotype.to_json())
    assert again == genotype
    first, second = AutoFEM(16, genotype), AutoFEM(16, again)
    assert str(first) == str(second)
    assert {k: v.shape for k, v in first.state_dict().items()} == {k: v.shape for k, v in second.state_dict().items()}
    features = [torch.randn(1, 16, s, s) for s in (40, 20, 10, 5, 3, 2)]  # odd sizes, as strides 4..128 give
    assert [tuple(f.shape) for f in first(features)] == [tuple(f.shape) for f in features]


def test_leaves_are_the_nodes_nobody_reads():
    genotype = default_genotype(levels=1, nodes=3)  # node i reads node i - 1: only the last is a leaf
    assert genotype.leaves(0) == [3]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g["cpm"][0][0].__setitem__(0, {"op": "sep7x7", "input": 0}), "unknown op or not an earlier node"),
        (lambda g: g["cpm"][0][1].__setitem__(0, {"op": "skip", "input": 2}), r"node 2 edge \(skip, 2\)"),
        (lambda g: g["fpn"].pop(), "5 FPN levels but 6 CPM cells"),
        (lambda g: g["fpn"][1].__setitem__("finer", "conv9"), "fpn\\[1\\] op 'conv9'"),
    ],
)
def test_bad_genotypes_are_refused_naming_the_entry(edit, message):
    import json

    data = json.loads(default_genotype().to_json())
    edit(data)
    with pytest.raises(ValueError, match=message):
        Genotype.from_json(json.dumps(data), "g.json")
