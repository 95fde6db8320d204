"""SCRFD computation redistribution (CR): the search space of the paper's section 4.2.

A point of the space is a :class:`CRArchitecture`: a ResNetV1e backbone (deep stem of three 3x3 convs
ending in ``stem_width`` channels, four stages of ``depths[i]`` identical basic or bottleneck blocks of
``widths[i]`` planes), a PAFPN neck of ``neck_width`` channels and a shared head of ``head_convs``
3x3 convs of ``head_width`` channels (GroupNorm), with SCRFD's anchors (16/32, 64/128, 256/512 at
strides 8/16/32). :meth:`CRArchitecture.model_args` is the option mapping of the registered builder
``scrfd_cr``, so a sampled architecture trains, checkpoints, evaluates and exports like any model.

The counting here is torch-free and closed-form, so that tens of thousands of uniform samples can be
screened against a GFLOP budget in seconds; ``tests/search/test_cr_space.py`` checks it against
:func:`facescope.models.complexity.count_macs` (the paper's mmcv 1.2 rule) on random architectures.

Example:
    >>> arch = CRArchitecture(24, "basic", (3, 5, 3, 2), (24, 48, 48, 80), 24, 2, 64)  # SCRFD-2.5GF
    >>> round(component_macs(arch).total / 1e9, 2)
    2.53
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from facescope.errors import ConfigError

Block = Literal["basic", "bottleneck"]
BLOCK_EXPANSION: dict[str, int] = {"basic": 1, "bottleneck": 4}
NUM_ANCHORS = 2
BOX_OUTPUTS = 4
VGA_HW = (480, 640)
COMPONENTS = ("stem", "C2", "C3", "C4", "C5", "neck", "head")


@dataclass(frozen=True)
class CRArchitecture:
    """One detector of the space (the paper's w0, d_i, w_i, n, m, h).

    Attributes:
        stem_width: w0, channels of the stem's last conv (its first two have w0 / 2, the deep stem
            of the released configs and of the paper's reference [13]).
        block: ``"basic"`` or ``"bottleneck"`` (ratio 4: a stage outputs ``4 * widths[i]``).
        depths: d_1..d_4, blocks per stage.
        widths: w_1..w_4, planes per stage.
        neck_width: n, PAFPN channels.
        head_convs: m, 3x3 convs of the shared head tower.
        head_width: h, channels of the head tower.
    """

    stem_width: int
    block: Block
    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    neck_width: int
    head_convs: int
    head_width: int

    def model_args(self) -> dict[str, object]:
        """The ``scrfd_cr`` builder options of this architecture (JSON- and YAML-friendly)."""
        args = asdict(self)
        args["depths"] = list(self.depths)
        args["widths"] = list(self.widths)
        return args

    @classmethod
    def from_model_args(cls, args: dict[str, object]) -> CRArchitecture:
        """Inverse of :meth:`model_args`; unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValueError(f"unknown CR architecture keys {unknown}; expected {sorted(known)}")
        values = dict(args)
        values["depths"] = tuple(int(d) for d in values["depths"])  # type: ignore[union-attr]
        values["widths"] = tuple(int(w) for w in values["widths"])  # type: ignore[union-attr]
        return cls(**values)  # type: ignore[arg-type]

    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of C2..C5."""
        return tuple(w * BLOCK_EXPANSION[self.block] for w in self.widths)


@dataclass(frozen=True)
class CRSpace:
    """Bounds of the space and the fixed parts of a step.

    The defaults are the paper's: d_i <= 24, w_i <= 512 in multiples of 8 and non-decreasing, m <= 6.
    The paper gives no bounds for w0, n and h; facescope takes the ranges of the released sampler
    (insightface ``search_tools``: base channels 8-64, FPN 8-128, head 8-256).

    Attributes:
        fixed_neck_width / fixed_head_convs / fixed_head_width: set for SCRFD1 (backbone-only step;
            the paper fixes n = 32, m = 2, h = 96 at 2.5 GF); None lets the step sample them.
        backbone_ratio_bounds: SCRFD2 keeps backbones whose per-component computation ratios
            (stem, C2..C5 over the backbone total) lie in these intervals (the SCRFD1 estimate).
        template: SCRFD2's backbone template (SCRFD1's recommended architecture). Uniform draws of
            the whole space almost never satisfy five ratio bounds and a budget at once, so SCRFD2
            scales the template by a depth and a width multiplier drawn from ``multiplier_range``
            (the released sampler's rule, 0.5-3) and keeps the draws inside the bounds; facescope's
            choice where the paper is silent.
    """

    max_depth: int = 24
    max_width: int = 512
    width_step: int = 8
    stem_widths: tuple[int, ...] = tuple(range(8, 65, 8))
    blocks: tuple[Block, ...] = ("basic", "bottleneck")
    neck_widths: tuple[int, ...] = tuple(range(8, 129, 8))
    head_conv_counts: tuple[int, ...] = tuple(range(1, 7))
    head_widths: tuple[int, ...] = tuple(range(8, 257, 8))
    fixed_neck_width: int | None = None
    fixed_head_convs: int | None = None
    fixed_head_width: int | None = None
    backbone_ratio_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    template: CRArchitecture | None = None
    multiplier_range: tuple[float, float] = (0.5, 3.0)

    def violations(self, arch: CRArchitecture) -> list[str]:
        """Every constraint ``arch`` breaks, as readable strings (empty when it is a point of the space)."""
        problems = []
        if arch.block not in self.blocks:
            problems.append(f"block {arch.block!r} not in {self.blocks}")
        if arch.stem_width not in self.stem_widths:
            problems.append(f"stem width {arch.stem_width} not in {self.stem_widths[0]}..{self.stem_widths[-1]}")
        if len(arch.depths) != 4 or len(arch.widths) != 4:
            problems.append("four stages need four depths and four widths")
        problems += [f"depth d{i + 1}={d} not in 1..{self.max_depth}" for i, d in enumerate(arch.depths) if not 1 <= d <= self.max_depth]
        problems += [
            f"width w{i + 1}={w} not a multiple of {self.width_step} in {self.width_step}..{self.max_width}"
            for i, w in enumerate(arch.widths)
            if w % self.width_step or not self.width_step <= w <= self.max_width
        ]
        if any(b < a for a, b in zip(arch.widths, arch.widths[1:])):
            problems.append(f"widths {arch.widths} decrease")
        problems += self._head_violations(arch)
        if self.backbone_ratio_bounds:
            ratios = component_macs(arch).backbone_ratios()
            for name, (low, high) in self.backbone_ratio_bounds.items():
                if not low <= ratios[name] <= high:
                    problems.append(f"{name} ratio {ratios[name]:.3f} outside [{low:.3f}, {high:.3f}]")
        return problems

    def _head_violations(self, arch: CRArchitecture) -> list[str]:
        fixed = {"neck_width": self.fixed_neck_width, "head_convs": self.fixed_head_convs, "head_width": self.fixed_head_width}
        allowed = {"neck_width": self.neck_widths, "head_convs": self.head_conv_counts, "head_width": self.head_widths}
        problems = []
        for name, value in fixed.items():
            actual = getattr(arch, name)
            if value is not None and actual != value:
                problems.append(f"{name}={actual} but this step fixes it at {value}")
            elif value is None and actual not in allowed[name]:
                problems.append(f"{name}={actual} not in {allowed[name][0]}..{allowed[name][-1]}")
        return problems

    def sample_columns(self, rng: np.random.Generator, count: int) -> dict[str, IntArray]:
        """``count`` architectures drawn uniformly from the space, as column arrays.

        Non-decreasing widths are drawn uniformly by "stars and bars": 4 distinct sorted indices of
        ``values + 3`` minus ``(0, 1, 2, 3)`` enumerate every non-decreasing 4-tuple exactly once. With a
        ``template`` (SCRFD2), the backbone is the template's scaled by one depth and one width multiplier.
        """

        def pick(fixed: int | None, values: tuple[int, ...]) -> IntArray:
            return np.full(count, fixed) if fixed is not None else rng.choice(np.array(values), size=count)

        columns = self._template_backbones(rng, count) if self.template is not None else self._uniform_backbones(rng, count)
        columns.update(
            neck_width=pick(self.fixed_neck_width, self.neck_widths),
            head_convs=pick(self.fixed_head_convs, self.head_conv_counts),
            head_width=pick(self.fixed_head_width, self.head_widths),
        )
        return columns

    def _uniform_backbones(self, rng: np.random.Generator, count: int) -> dict[str, IntArray]:
        slots = _sorted_distinct(rng, count, self.max_width // self.width_step + 3) - np.arange(4)
        return {
            "stem_width": rng.choice(np.array(self.stem_widths), size=count),
            "bottleneck": rng.choice(np.array([b == "bottleneck" for b in self.blocks]), size=count),
            "depths": rng.integers(1, self.max_depth + 1, size=(count, 4)),
            "widths": (slots + 1) * self.width_step,
        }

    def _template_backbones(self, rng: np.random.Generator, count: int) -> dict[str, IntArray]:
        assert self.template is not None
        low, high = self.multiplier_range
        depth_mult, width_mult = rng.uniform(low, high, size=(2, count, 1))
        step = self.width_step

        def round_width(w: IntArray) -> IntArray:
            return np.clip(np.round(w / step).astype(np.int64) * step, step, self.max_width)

        stem = round_width(self.template.stem_width * width_mult[:, 0])
        return {
            "stem_width": np.clip(stem, min(self.stem_widths), max(self.stem_widths)),
            "bottleneck": np.full(count, self.template.block == "bottleneck"),
            "depths": np.clip(np.round(np.array(self.template.depths) * depth_mult).astype(np.int64), 1, self.max_depth),
            "widths": round_width(np.array(self.template.widths) * width_mult),
        }

    def sample(self, rng: np.random.Generator) -> CRArchitecture:
        """One architecture drawn uniformly from the space."""
        return from_columns(self.sample_columns(rng, 1), 0)


def _sorted_distinct(rng: np.random.Generator, count: int, size: int) -> IntArray:
    """``[count, 4]`` uniformly random 4-subsets of ``range(size)``, each row sorted."""
    rows: list[IntArray] = []
    while sum(len(r) for r in rows) < count:
        draws = np.sort(rng.integers(0, size, size=(count + 16, 4)), axis=1)
        rows.append(draws[np.all(np.diff(draws, axis=1) > 0, axis=1)])  # a row with a repeat is redrawn
    return np.concatenate(rows)[:count]


@dataclass(frozen=True)
class ComponentMacs:
    """Multiply-accumulates per component at one input size (the SCRFD paper's "FLOPs")."""

    stem: int
    stages: tuple[int, int, int, int]
    neck: int
    head: int

    @property
    def backbone(self) -> int:
        return self.stem + sum(self.stages)

    @property
    def total(self) -> int:
        return self.backbone + self.neck + self.head

    def as_dict(self) -> dict[str, int]:
        """Every component of :data:`COMPONENTS` plus ``backbone`` and ``total``."""
        parts = dict(zip(COMPONENTS, (self.stem, *self.stages, self.neck, self.head)))
        return {**parts, "backbone": self.backbone, "total": self.total}

    def backbone_ratios(self) -> dict[str, float]:
        """stem, C2..C5 as fractions of the backbone (the paper's Figure 5 axes)."""
        return {name: value / self.backbone for name, value in zip(COMPONENTS[:5], (self.stem, *self.stages))}

    def detector_ratios(self) -> dict[str, float]:
        """backbone, neck, head as fractions of the whole detector (Figure 9)."""
        return {"backbone": self.backbone / self.total, "neck": self.neck / self.total, "head": self.head / self.total}


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


# The count below works on arrays (one entry per architecture), so that a million uniform samples are
# screened against a budget in about a second; component_macs() is the one-architecture view of it.
IntArray = np.ndarray


def _stage_macs(bottleneck: IntArray, in_ch: IntArray, planes: IntArray, depth: IntArray, stride: int,
                hw: tuple[int, int]) -> tuple[IntArray, tuple[int, int]]:
    """MACs of one ResNetV1e stage per architecture and the stage's output size.

    Mirrors ``backbones/resnet.py`` under the mmcv 1.2 rule: conv ``k*k*Cin*Cout*positions``, BN twice
    its input, ReLU its output per call (a block's ReLU module runs after conv1 and after the sum, and
    also after conv2 in a bottleneck), pooling its input.
    """
    out_hw = (_conv_out(hw[0], 3, stride, 1), _conv_out(hw[1], 3, stride, 1))
    pin, pout = hw[0] * hw[1], out_hw[0] * out_hw[1]
    out_ch = np.where(bottleneck, 4 * planes, planes)

    def block_macs(cin: IntArray, p_in: int) -> IntArray:
        basic = (9 * cin * planes + 3 * planes + 9 * planes * planes + 3 * planes) * pout
        neck = (cin * planes + 3 * planes) * p_in + (9 * planes * planes + 3 * planes + planes * out_ch + 3 * out_ch) * pout
        return np.where(bottleneck, neck, basic)

    first = block_macs(in_ch, pin)
    needs_shortcut = (stride != 1) | (in_ch != out_ch)  # AvgPool(stride) -> 1x1 -> BN shortcut
    first = first + np.where(needs_shortcut, in_ch * pin + (in_ch * out_ch + 2 * out_ch) * pout, 0)
    return first + (depth - 1) * block_macs(out_ch, pout), out_hw


def macs_table(columns: dict[str, IntArray], input_hw: tuple[int, int] = VGA_HW) -> dict[str, IntArray]:
    """MACs per component for many architectures at once.

    Args:
        columns: ``stem_width``, ``bottleneck`` (bool), ``neck_width``, ``head_convs``, ``head_width``
            of shape ``[N]`` and ``depths``, ``widths`` of shape ``[N, 4]`` (see :func:`as_columns`).
        input_hw: ``(height, width)`` of the ``1 x 3 x H x W`` input.

    Returns:
        ``stem``, ``C2``..``C5``, ``neck``, ``head``, ``backbone`` and ``total``, each int64 ``[N]``.
    """
    w0 = columns["stem_width"].astype(np.int64)
    half = w0 // 2
    h, w = _conv_out(input_hw[0], 3, 2, 1), _conv_out(input_hw[1], 3, 2, 1)
    p = h * w
    stem = (27 * half + 3 * half + 9 * half * half + 3 * half + 9 * half * w0 + 3 * w0) * p + w0 * p  # + max-pool
    hw, in_ch = (h // 2, w // 2), w0
    bottleneck = columns["bottleneck"].astype(bool)
    depths, widths = columns["depths"].astype(np.int64), columns["widths"].astype(np.int64)
    table: dict[str, IntArray] = {"stem": stem}
    positions, channels = [], []
    for i in range(4):
        table[f"C{i + 2}"], hw = _stage_macs(bottleneck, in_ch, widths[:, i], depths[:, i], 1 if i == 0 else 2, hw)
        in_ch = np.where(bottleneck, 4 * widths[:, i], widths[:, i])
        positions.append(hw[0] * hw[1])
        channels.append(in_ch)
    table["neck"] = _neck_macs(columns["neck_width"].astype(np.int64), channels[1:], positions[1:])
    table["head"] = _head_macs(columns, positions[1:])
    table["backbone"] = stem + sum(table[f"C{i}"] for i in range(2, 6))
    table["total"] = table["backbone"] + table["neck"] + table["head"]
    return table


def _neck_macs(n: IntArray, channels: list[IntArray], positions: list[int]) -> IntArray:
    """PAFPN over C3..C5: biased laterals, fpn convs, two stride-2 convs, two pafpn convs."""
    laterals = sum((c * n + n) * q for c, q in zip(channels, positions))
    return laterals + (9 * n * n + n) * (sum(positions) + 2 * sum(positions[1:]))


def _head_macs(columns: dict[str, IntArray], positions: list[int]) -> IntArray:
    """Shared tower (bias-free convs, GroupNorm not counted, ReLU) and the 3x3 output convs per level."""
    n, h, m = (columns[k].astype(np.int64) for k in ("neck_width", "head_width", "head_convs"))
    tower = 9 * n * h + h + (m - 1) * (9 * h * h + h)
    outputs = NUM_ANCHORS * (1 + BOX_OUTPUTS)  # the paper's search has no landmark branch
    return (tower + 9 * h * outputs + outputs) * sum(positions)


def as_columns(archs: list[CRArchitecture]) -> dict[str, IntArray]:
    """Architectures as the column arrays :func:`macs_table` reads."""
    return {
        "stem_width": np.array([a.stem_width for a in archs]),
        "bottleneck": np.array([a.block == "bottleneck" for a in archs]),
        "depths": np.array([a.depths for a in archs]).reshape(-1, 4),
        "widths": np.array([a.widths for a in archs]).reshape(-1, 4),
        "neck_width": np.array([a.neck_width for a in archs]),
        "head_convs": np.array([a.head_convs for a in archs]),
        "head_width": np.array([a.head_width for a in archs]),
    }


def from_columns(columns: dict[str, IntArray], index: int) -> CRArchitecture:
    """Row ``index`` of column arrays as an architecture."""
    return CRArchitecture(
        stem_width=int(columns["stem_width"][index]),
        block="bottleneck" if columns["bottleneck"][index] else "basic",
        depths=tuple(int(d) for d in columns["depths"][index]),  # type: ignore[arg-type]
        widths=tuple(int(w) for w in columns["widths"][index]),  # type: ignore[arg-type]
        neck_width=int(columns["neck_width"][index]),
        head_convs=int(columns["head_convs"][index]),
        head_width=int(columns["head_width"][index]),
    )


def component_macs(arch: CRArchitecture, input_hw: tuple[int, int] = VGA_HW) -> ComponentMacs:
    """MACs per component of ``arch`` on a ``1 x 3 x H x W`` input (the SCRFD paper's counting rule).

    Returns:
        :class:`ComponentMacs`; ``component_macs(a).total / 1e9`` is the paper's GFLOPs.
    """
    table = {k: int(v[0]) for k, v in macs_table(as_columns([arch]), input_hw).items()}
    return ComponentMacs(table["stem"], tuple(table[f"C{i}"] for i in range(2, 6)), table["neck"], table["head"])  # type: ignore[arg-type]


def sample_within_budget(
    space: CRSpace,
    budget_gflops: float,
    count: int,
    *,
    tolerance: float = 0.02,
    seed: int = 0,
    max_draws: int = 50_000_000,
    chunk: int = 200_000,
    input_hw: tuple[int, int] = VGA_HW,
) -> list[CRArchitecture]:
    """Uniform samples of ``space`` kept when their GFLOPs lie within ``budget * (1 +- tolerance)``.

    The paper's rule: draw uniformly, keep what falls in the complexity regime, until ``count``
    distinct architectures are kept (deterministic for a seed). Few uniform draws of the paper's
    space land near a small budget, so the draws are made and counted in vectorised chunks.

    Raises:
        ConfigError: before any draw when the smallest point of the space exceeds the budget (e.g. a
            fixed neck and head that alone cost more), or naming how many were found when
            ``max_draws`` draws do not find ``count``.
    """
    _check_reachable(space, budget_gflops * (1 + tolerance), input_hw)
    rng = np.random.default_rng(seed)
    low, high = budget_gflops * (1 - tolerance) * 1e9, budget_gflops * (1 + tolerance) * 1e9
    kept: dict[CRArchitecture, None] = {}
    drawn = 0
    while drawn < max_draws and len(kept) < count:
        columns = space.sample_columns(rng, min(chunk, max_draws - drawn))
        drawn += min(chunk, max_draws - drawn)
        total = macs_table(columns, input_hw)["total"]
        for index in np.flatnonzero((total >= low) & (total <= high)):
            arch = from_columns(columns, int(index))
            if not space.backbone_ratio_bounds or not space.violations(arch):
                kept.setdefault(arch)
            if len(kept) == count:
                break
    if len(kept) < count:
        raise ConfigError(
            f"found {len(kept)} of {count} architectures within {budget_gflops} GF +-{tolerance:.0%} in {drawn} draws"
        )
    return list(kept)


def _check_reachable(space: CRSpace, ceiling_gflops: float, input_hw: tuple[int, int]) -> None:
    """Refuse a budget below the space's smallest architecture, naming what that costs."""
    step = space.width_step
    smallest = CRArchitecture(
        min(space.stem_widths), "basic", (1, 1, 1, 1), (step, step, step, step),
        space.fixed_neck_width or min(space.neck_widths), space.fixed_head_convs or min(space.head_conv_counts),
        space.fixed_head_width or min(space.head_widths),
    )  # fmt: skip
    if space.template is None and (parts := component_macs(smallest, input_hw)).total > ceiling_gflops * 1e9:
        raise ConfigError(
            f"no architecture of this space fits {ceiling_gflops:.3f} GF: the smallest costs {parts.total / 1e9:.3f} GF "
            f"(neck {parts.neck / 1e9:.3f}, head {parts.head / 1e9:.3f}); lower the fixed neck/head or raise the budget"
        )
