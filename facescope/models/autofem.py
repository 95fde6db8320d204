"""AutoFEM (ASFD, arXiv 2003.11228): searched feature enhancement as data.

AutoFEM is an **FPN cell** followed by one **CPM cell** per detection level:

* FPN cell, per output level ``l``: ``O_l = conv1x1(F_l) + op_f(F_{l-1}) + resize(op_c(F_{l+1}))`` -- its own
  level through a 1x1 conv, the finer neighbour through a searched op with stride 2, the coarser one through a
  searched op then resized (bilinear) to level ``l``'s size.
* CPM cell: node 0 is the level's map; each of ``nodes`` intermediate nodes sums two searched (op, input) edges
  from earlier nodes; the output is a 1x1 conv (with BatchNorm, ReLU) of the concatenated *leaf* nodes (the
  intermediate nodes no other node reads), back to the width.

A :class:`Genotype` (JSON: one (op, input) pair per edge, per cell) builds the discrete modules
(:class:`AutoFEM`); the search modules (:class:`SearchAutoFEM` of a :class:`SearchFPNCell` and
:class:`SearchCPMCell` s, their edges :class:`PartialChannelMixedOp`) implement the
paper's "improved" differentiable search: PC-DARTS partial channels (1/4 of the channels per edge, shuffled back)
and a forward that runs only the highest-weight (edge, op) of each node while every architecture weight of the
node still receives a gradient.

The paper lists neither its candidate ops nor its searched cells; the op set here (:data:`CPM_OPS`,
:data:`FPN_OPS`) is facescope's own and configurable by passing another mapping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OpFactory = Callable[[int, int], nn.Module]  # (channels, stride) -> module mapping [B, C, H, W] to [B, C, H/s, W/s]


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape (an edge the search may switch off)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def _relu_conv_bn(channels: int, kernel: tuple[int, int], stride: int, dilation: int = 1) -> nn.Sequential:
    padding = (dilation * (kernel[0] - 1) // 2, dilation * (kernel[1] - 1) // 2)
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(channels),
    )


def _separable(channels: int, kernel: int, stride: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, kernel, stride, padding, dilation=dilation, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
    )


def _asymmetric(channels: int, kernel: int, stride: int) -> nn.Sequential:
    """1xk then kx1 (the stride on the first)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, (1, kernel), (1, stride), (0, kernel // 2), bias=False),
        nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), (kernel // 2, 0), bias=False),
        nn.BatchNorm2d(channels),
    )


def _skip(channels: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else _relu_conv_bn(channels, (1, 1), stride)


CPM_OPS: dict[str, OpFactory] = {
    "none": lambda c, s: Zero(s),
    "skip": _skip,
    "conv1x1": lambda c, s: _relu_conv_bn(c, (1, 1), s),
    "sep3x3": lambda c, s: _separable(c, 3, s),
    "sep5x5": lambda c, s: _separable(c, 5, s),
    "dil3x3_r2": lambda c, s: _separable(c, 3, s, dilation=2),
    "dil3x3_r3": lambda c, s: _separable(c, 3, s, dilation=3),
    "conv1x3_3x1": lambda c, s: _asymmetric(c, 3, s),
    "conv1x5_5x1": lambda c, s: _asymmetric(c, 5, s),
}
FPN_OPS: dict[str, OpFactory] = {name: CPM_OPS[name] for name in ("none", "conv1x1", "sep3x3", "sep5x5", "dil3x3_r2")}


@dataclass(frozen=True)
class Genotype:
    """A searched AutoFEM, one entry per detection level.

    Attributes:
        fpn: per level ``(op from the finer level, op from the coarser level)``; the finest level has no finer
            neighbour and the coarsest no coarser one (their entries are ignored and written as ``"none"``).
        cpm: per level, per intermediate node, its two ``(op, input node)`` edges (inputs index earlier nodes,
            0 is the cell's input).
    """

    fpn: tuple[tuple[str, str], ...]
    cpm: tuple[tuple[tuple[tuple[str, int], tuple[str, int]], ...], ...]

    @property
    def levels(self) -> int:
        return len(self.cpm)

    def to_json(self) -> str:
        """The genotype file's text."""
        cpm = [[[{"op": op, "input": src} for op, src in node] for node in cell] for cell in self.cpm]
        return json.dumps({"fpn": [{"finer": f, "coarser": c} for f, c in self.fpn], "cpm": cpm}, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "genotype") -> Genotype:
        """Parse (and check) a genotype file's text; errors name the source and the entry."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON ({error})") from None
        try:
            fpn = tuple((str(e["finer"]), str(e["coarser"])) for e in data["fpn"])
            cpm = tuple(
                tuple(tuple((str(edge["op"]), int(edge["input"])) for edge in node) for node in cell)  # type: ignore[misc]
                for cell in data["cpm"]
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"{source}: not a genotype ({error!r}); expected {{'fpn': [...], 'cpm': [...]}}") from None
        genotype = cls(fpn, cpm)  # type: ignore[arg-type]
        genotype.check(source)
        return genotype

    @classmethod
    def read(cls, path: str | Path) -> Genotype:
        return cls.from_json(Path(path).read_text(), str(path))

    def check(self, source: str = "genotype", cpm_ops: Mapping[str, OpFactory] = CPM_OPS,
              fpn_ops: Mapping[str, OpFactory] = FPN_OPS) -> None:  # fmt: skip
        """Refuse unknown ops, inputs that are not earlier nodes and nodes without two edges."""
        if len(self.fpn) != len(self.cpm):
            raise ValueError(f"{source}: {len(self.fpn)} FPN levels but {len(self.cpm)} CPM cells")
        for level, (finer, coarser) in enumerate(self.fpn):
            for op in (finer, coarser):
                if op not in fpn_ops:
                    raise ValueError(f"{source}: fpn[{level}] op '{op}' is not one of {sorted(fpn_ops)}")
        for level, cell in enumerate(self.cpm):
            for node, edges in enumerate(cell, start=1):
                if len(edges) != 2:
                    raise ValueError(f"{source}: cpm[{level}] node {node} has {len(edges)} edges, needs 2")
                for op, src in edges:
                    if op not in cpm_ops or not 0 <= src < node:
                        raise ValueError(f"{source}: cpm[{level}] node {node} edge ({op}, {src}): unknown op or not an earlier node")

    def leaves(self, level: int) -> list[int]:
        """Intermediate nodes of ``level``'s CPM cell that no other node reads (the cell's output)."""
        cell = self.cpm[level]
        read = {src for node in cell for _, src in node}
        return [n for n in range(1, len(cell) + 1) if n not in read]


class CPMCell(nn.Module):
    """A discrete CPM cell: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, channels: int, nodes: Sequence[tuple[tuple[str, int], tuple[str, int]]], leaves: Sequence[int],
                 ops: Mapping[str, OpFactory] = CPM_OPS) -> None:  # fmt: skip
        super().__init__()
        self.inputs = [tuple(src for _, src in node) for node in nodes]
        self.edges = nn.ModuleList(nn.ModuleList(ops[op](channels, 1) for op, _ in node) for node in nodes)
        self.leaves = list(leaves)
        self.project = nn.Sequential(
            nn.Conv2d(channels * len(self.leaves), channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        states = [x]
        for sources, edges in zip(self.inputs, self.edges):
            states.append(sum(edge(states[src]) for edge, src in zip(edges, sources)))  # type: ignore[arg-type]
        return self.project(torch.cat([states[n] for n in self.leaves], dim=1))


class FPNCell(nn.Module):
    """The discrete AutoFEM-FPN: per level, own 1x1 + finer (stride 2) + coarser (resized) searched ops."""

    def __init__(self, channels: int, fpn: Sequence[tuple[str, str]], ops: Mapping[str, OpFactory] = FPN_OPS) -> None:
        super().__init__()
        levels = len(fpn)
        self.own = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(levels))
        self.from_finer = nn.ModuleList(ops[f](channels, 2) if 0 < i else nn.Identity() for i, (f, _) in enumerate(fpn))
        self.from_coarser = nn.ModuleList(ops[c](channels, 1) if i < levels - 1 else nn.Identity() for i, (_, c) in enumerate(fpn))

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outputs = []
        for i, x in enumerate(features):
            out = self.own[i](x)
            if i > 0:
                out = out + _fit(self.from_finer[i](features[i - 1]), x.shape[-2:])
            if i < len(features) - 1:
                out = out + F.interpolate(self.from_coarser[i](features[i + 1]), size=x.shape[-2:], mode="bilinear", align_corners=False)
            outputs.append(out)
        return outputs


def _fit(x: Tensor, size: torch.Size) -> Tensor:
    """A stride-2 map of an odd-sized level may be one pixel larger than the next level: crop or pad to ``size``."""
    if x.shape[-2:] == size:
        return x
    x = x[..., : size[0], : size[1]]
    return F.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]))


class AutoFEM(nn.Module):
    """FPN cell then one CPM cell per level, built from a :class:`Genotype`.

    Args:
        channels: width of every level (the backbone maps are projected to it beforehand).
        genotype: the searched cells.
        cpm_ops, fpn_ops: the candidate op sets the genotype's names refer to.
        cpm_repeats: how many times each level's CPM cell is stacked (state-dict keys ``cpm.<level>.<repeat>``).

    Returns (forward):
        One ``[B, channels, H_l, W_l]`` map per level, the input's sizes.

    Example:
        >>> fem = AutoFEM(8, default_genotype(levels=2, nodes=2))
        >>> [f.shape[-1] for f in fem([torch.zeros(1, 8, 16, 16), torch.zeros(1, 8, 8, 8)])]
        [16, 8]
    """

    def __init__(self, channels: int, genotype: Genotype, cpm_ops: Mapping[str, OpFactory] = CPM_OPS,
                 fpn_ops: Mapping[str, OpFactory] = FPN_OPS, cpm_repeats: int = 1) -> None:  # fmt: skip
        super().__init__()
        if cpm_repeats < 1:
            raise ValueError(f"cpm_repeats must be >= 1, got {cpm_repeats}")
        genotype.check(cpm_ops=cpm_ops, fpn_ops=fpn_ops)
        self.fpn = FPNCell(channels, genotype.fpn, fpn_ops)
        # each level's searched cell, applied cpm_repeats times in a row (the depth axis of ASFD's scaling)
        self.cpm = nn.ModuleList(
            nn.Sequential(*(CPMCell(channels, genotype.cpm[level], genotype.leaves(level), cpm_ops) for _ in range(cpm_repeats)))
            for level in range(genotype.levels)
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [cell(x) for cell, x in zip(self.cpm, self.fpn(features))]


def default_genotype(levels: int = 6, nodes: int = 6) -> Genotype:
    """facescope's own default genotype (the paper's searched cells are not public).

    A hand-designed cell in the paper's spirit: low levels get larger receptive fields (dilated and 5x5 ops),
    node ``i`` reads node ``i - 1`` and the cell input, the FPN uses separable 3x3 from both neighbours.
    """
    cells = []
    for level in range(levels):
        wide = level < levels // 2  # low-level CPMs end up with larger receptive fields in the paper
        chain_ops = ("dil3x3_r2", "sep5x5", "dil3x3_r3") if wide else ("sep3x3", "conv1x3_3x1", "sep3x3")
        cell = [((chain_ops[0], 0), ("conv1x1", 0))]
        cell += [((chain_ops[n % 3], n), ("skip", 0)) for n in range(1, nodes)]
        cells.append(tuple(cell))
    fpn = tuple(("none" if i == 0 else "sep3x3", "none" if i == levels - 1 else "sep3x3") for i in range(levels))
    return Genotype(fpn, tuple(cells))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# Search modules (PC-DARTS partial channels, the improved one-path forward)
# ------------------------------------------------------------------------------------------------------------


def _strongest(weights: Tensor) -> int:
    """Flat index of the largest weight; 0 on the meta device (shape-only passes such as MAC counting, where every
    candidate gives the same output shape)."""
    return 0 if weights.is_meta else int(weights.flatten().argmax())


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: ``[B, g*k, H, W]`` viewed as ``[B, g, k]`` -> ``[B, k, g]`` -> flat."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PartialChannelMixedOp(nn.Module):
    """One search edge: the candidate ops on ``1/k`` of the channels, the rest bypassed, then shuffled.

    ``forward(x, op_index)`` runs only candidate ``op_index`` (the improved search's single path).
    """

    def __init__(self, channels: int, ops: Mapping[str, OpFactory], stride: int = 1, partial: int = 4) -> None:
        super().__init__()
        if channels % partial:
            raise ValueError(f"{channels} channels do not split into {partial} partial groups")
        self.partial, self.stride = partial, stride
        self.names = list(ops)
        self.candidates = nn.ModuleList(factory(channels // partial, stride) for factory in ops.values())

    def forward(self, x: Tensor, op_index: int, weight: Tensor | float = 1.0) -> Tensor:
        """``[B, C, H, W] -> [B, C, H/s, W/s]``: candidate ``op_index`` on the first ``C/partial`` channels, its output
        multiplied by ``weight`` (the search's straight-through factor; the bypassed channels are not weighted, so
        the architecture gradient depends on the op's output only), the rest bypassed, then shuffled."""
        part = x.shape[1] // self.partial
        active, bypass = x[:, :part], x[:, part:]
        if self.stride != 1:
            bypass = F.max_pool2d(bypass, self.stride, self.stride, ceil_mode=True)
        processed = self.candidates[op_index](active) * weight
        return channel_shuffle(torch.cat([processed, _fit(bypass, processed.shape[-2:])], dim=1), self.partial)


class SearchCPMCell(nn.Module):
    """A CPM cell over every (input, op) edge, with architecture logits.

    Node ``i`` has logits ``alpha[i][j, o]`` for edge ``j -> i`` and op ``o`` and a per-edge term ``beta[i][j]``
    in the role of PC-DARTS's edge normalisation; its weights are one softmax over ``alpha + beta`` of all its
    (edge, op) pairs (facescope's form: PC-DARTS's product ``softmax(beta)_j * softmax(alpha_j)_o`` would give
    the logits of the edges not taken no gradient at all under a one-path forward). The forward runs only the
    arg-max pair, its op's output multiplied by the straight-through factor ``1 + p - p.detach()`` (GDAS): the
    value is that op's output, and the gradient reaches every logit of the node through ``p``. While searching
    every intermediate node feeds the output (the leaves of the final cell are not known until it is derived;
    the derived :class:`CPMCell` concatenates its leaves).
    """

    def __init__(self, channels: int, nodes: int = 6, ops: Mapping[str, OpFactory] = CPM_OPS, partial: int = 4) -> None:
        super().__init__()
        self.op_names = list(ops)
        self.edges = nn.ModuleList(
            nn.ModuleList(PartialChannelMixedOp(channels, ops, 1, partial) for _ in range(node)) for node in range(1, nodes + 1)
        )
        self.alpha = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(node, len(ops))) for node in range(1, nodes + 1))
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(node)) for node in range(1, nodes + 1))
        self.project = nn.Sequential(nn.Conv2d(channels * nodes, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def node_weights(self, node: int) -> Tensor:
        """``[inputs, ops]`` softmax weights of intermediate node ``node`` (0-based)."""
        logits = self.alpha[node] + self.beta[node][:, None]
        return logits.flatten().softmax(0).view_as(logits)

    def forward(self, x: Tensor) -> Tensor:
        states = [x]
        for node, edges in enumerate(self.edges):
            weights = self.node_weights(node)
            flat = _strongest(weights)
            src, op = divmod(flat, len(self.op_names))  # a Python int also while tracing (shapes are tensors then)
            p = weights[src, op]
            states.append(edges[src](states[src], op, weight=1.0 + p - p.detach()))
        # Every intermediate node feeds the output while searching (the genotype keeps the leaves).
        return self.project(torch.cat(states[1:], dim=1))

    def derive(self, exclude: Sequence[str] = ("none",)) -> tuple[tuple[tuple[str, int], tuple[str, int]], ...]:
        """The discrete cell: per node, its two strongest inputs with their strongest op (DARTS's rule)."""
        keep = [i for i, name in enumerate(self.op_names) if name not in exclude]
        nodes = []
        for node in range(len(self.edges)):
            weights = self.node_weights(node).detach()[:, keep]
            best_op = weights.argmax(1)
            ranked = weights.max(1).values.argsort(descending=True).tolist()
            picks = (ranked + ranked)[:2] if len(ranked) == 1 else ranked[:2]
            nodes.append(tuple((self.op_names[keep[int(best_op[src])]], int(src)) for src in sorted(picks)))
        return tuple(nodes)  # type: ignore[return-value]


def architecture_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The search's architecture logits (``alpha`` / ``beta`` of every search cell), for the bilevel step."""
    return [p for name, p in module.named_parameters() if name.split(".")[-2] in ("alpha", "beta")]


class SearchFPNCell(nn.Module):
    """The AutoFEM-FPN over every candidate op of its neighbour edges, with architecture logits.

    Per level ``l``: its own map through a fixed 1x1 conv, plus the finer neighbour through a searched
    stride-2 edge and the coarser one through a searched edge then bilinear resizing (the discrete
    :class:`FPNCell`'s wiring). Each edge has logits ``alpha[2 l + k]`` over the ops (``k`` 0: finer,
    1: coarser) and runs, as the CPM cells do, only its arg-max op with the straight-through factor
    ``1 + p - p.detach()``, on ``1/partial`` of the channels.
    """

    def __init__(self, channels: int, levels: int, ops: Mapping[str, OpFactory] = FPN_OPS, partial: int = 4) -> None:
        super().__init__()
        self.op_names = list(ops)
        self.own = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(levels))
        # the finest level has no finer neighbour, the coarsest no coarser one (identity placeholders keep the indices)
        self.from_finer = nn.ModuleList(PartialChannelMixedOp(channels, ops, 2, partial) if i else nn.Identity() for i in range(levels))
        self.from_coarser = nn.ModuleList(
            PartialChannelMixedOp(channels, ops, 1, partial) if i < levels - 1 else nn.Identity() for i in range(levels)
        )
        self.alpha = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(len(ops))) for _ in range(2 * levels))

    def edge_weights(self, level: int, side: int) -> Tensor:
        """``[ops]`` softmax weights of level ``level``'s edge from the finer (``side`` 0) or coarser (1) level."""
        return self.alpha[2 * level + side].softmax(0)

    def _edge(self, edge: nn.Module, level: int, side: int, x: Tensor) -> Tensor:
        """The edge's arg-max op on ``x``, its output times the straight-through factor of its weight."""
        weights = self.edge_weights(level, side)
        op = _strongest(weights)
        p = weights[op]
        return edge(x, op, weight=1.0 + p - p.detach())

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outputs = []
        last = len(features) - 1
        for i, x in enumerate(features):
            out = self.own[i](x)
            if i > 0:
                out = out + _fit(self._edge(self.from_finer[i], i, 0, features[i - 1]), x.shape[-2:])
            if i < last:
                coarser = self._edge(self.from_coarser[i], i, 1, features[i + 1])
                out = out + F.interpolate(coarser, size=x.shape[-2:], mode="bilinear", align_corners=False)
            outputs.append(out)
        return outputs

    def derive(self) -> tuple[tuple[str, str], ...]:
        """Per level, the strongest op of each neighbour edge (``"none"`` where the level has no such neighbour)."""
        levels = len(self.own)
        best = [[self.op_names[int(self.edge_weights(i, side).argmax())] for side in (0, 1)] for i in range(levels)]
        return tuple(("none" if i == 0 else best[i][0], "none" if i == levels - 1 else best[i][1]) for i in range(levels))


class SearchAutoFEM(nn.Module):
    """The AutoFEM supernet: a :class:`SearchFPNCell` then one :class:`SearchCPMCell` per level.

    ``genotype()`` derives the discrete :class:`Genotype` (DARTS's top-2 inputs per CPM node, the
    strongest op per FPN edge), which builds :class:`AutoFEM` for training and deployment.
    """

    def __init__(self, channels: int, levels: int = 6, nodes: int = 6, cpm_ops: Mapping[str, OpFactory] = CPM_OPS,
                 fpn_ops: Mapping[str, OpFactory] = FPN_OPS, partial: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.fpn = SearchFPNCell(channels, levels, fpn_ops, partial)
        self.cpm = nn.ModuleList(SearchCPMCell(channels, nodes, cpm_ops, partial) for _ in range(levels))

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        """One ``[B, C, H_l, W_l]`` map per level in, the same shapes out."""
        return [cell(x) for cell, x in zip(self.cpm, self.fpn(features))]

    def genotype(self) -> Genotype:
        """The discrete cells the current architecture weights select."""
        with torch.no_grad():
            return Genotype(self.fpn.derive(), tuple(cell.derive() for cell in self.cpm))

    def weights_snapshot(self) -> dict[str, Any]:
        """The softmax architecture weights (6 decimals) as nested lists (the search's history records one per epoch):
        ``fpn[level][side][op]`` and ``cpm[level][node][input][op]``, with the op names."""
        def rounded(weights: Tensor) -> Any:  # 6 decimals (in Python: float32 values print with ~17 digits)
            values = weights.tolist()
            return [[round(v, 6) for v in row] for row in values] if weights.dim() == 2 else [round(v, 6) for v in values]

        with torch.no_grad():
            fpn = [[rounded(self.fpn.edge_weights(i, side)) for side in (0, 1)] for i in range(len(self.fpn.own))]
            cpm = [[rounded(cell.node_weights(n)) for n in range(len(cell.edges))] for cell in self.cpm]
        return {"fpn_ops": self.fpn.op_names, "cpm_ops": self.cpm[0].op_names, "fpn": fpn, "cpm": cpm}
