"""The parameter layout of the released DSFD checkpoint ``WIDERFace_DSFD_RES152.pth``, transcribed
from the description of the official network (``shared/reference/dsfd_asfd_shf_eval.md`` sections
1.1-1.4 and the release's ``face_ssd.py`` module structure), without building any module.

Every entry is ``(state-dict key, shape)``. The walk follows the release's attributes:

* ``layer1`` = ``Sequential(conv1, bn1, relu, maxpool, resnet.layer1)``, ``layer2``..``layer4`` =
  ``Sequential(resnet.layerN)`` of a torchvision ResNet-152 (bottlenecks 3, 8, 36, 3; stride on the
  3x3; a 1x1 conv + BN projection in each stage's first block);
* ``layer5`` / ``layer6``: ``conv(bias) BN ReLU conv(bias) BN ReLU`` at indices 0, 1, 3, 4;
* ``latlayer{3,2,1}`` / ``smooth{3,2,1}``: biased 1x1 convs of the three product fusions;
* ``cpm3_3, cpm4_3, cpm5_3, cpm7, cpm6_2, cpm7_2``: FEMs with biased 3x3 convs ``cpm1``..``cpm5``;
* ``loc.<l>`` / ``conf.<l>``: heads of three 3x3 convs (512 -> 256 -> 256 -> 256) and a 1x1 output;
  loc gives 4 numbers per part, conf 4 max-in-out face channels plus 2 per extra part, where the
  parts are face (all levels), head (levels 1..5) and body (levels 2..5).

The release's code targets PyTorch 0.3.1, whose BatchNorm had no ``num_batches_tracked`` buffer; the
file itself is not available here, so the layout leaves those buffers out by default and
``with_batch_counters=True`` adds them (as a modern ``state_dict()`` has). A modern BatchNorm loads
a state dict strictly either way.
"""

from __future__ import annotations

from collections.abc import Iterator

Shape = tuple[int, ...]

RESNET152_STAGES = (  # (attribute prefix of the stage, blocks, bottleneck width)
    ("layer1.4", 3, 64),
    ("layer2.0", 8, 128),
    ("layer3.0", 36, 256),
    ("layer4.0", 3, 512),
)
EXPANSION = 4
SOURCE_WIDTHS = {"cpm3_3": 256, "cpm4_3": 512, "cpm5_3": 1024, "cpm7": 2048, "cpm6_2": 512, "cpm7_2": 256}
FEM_OUTPUT = 256 + 128 + 128
HEAD_WIDTH = 256


def _conv(prefix: str, cout: int, cin: int, k: int, bias: bool) -> Iterator[tuple[str, Shape]]:
    yield f"{prefix}.weight", (cout, cin, k, k)
    if bias:
        yield f"{prefix}.bias", (cout,)


def _bn(prefix: str, channels: int, counters: bool) -> Iterator[tuple[str, Shape]]:
    for name in ("weight", "bias", "running_mean", "running_var"):
        yield f"{prefix}.{name}", (channels,)
    if counters:
        yield f"{prefix}.num_batches_tracked", ()


def _resnet152(counters: bool) -> Iterator[tuple[str, Shape]]:
    yield from _conv("layer1.0", 64, 3, 7, bias=False)
    yield from _bn("layer1.1", 64, counters)
    cin = 64
    for prefix, blocks, width in RESNET152_STAGES:
        for b in range(blocks):
            p = f"{prefix}.{b}"
            yield from _conv(f"{p}.conv1", width, cin, 1, bias=False)
            yield from _bn(f"{p}.bn1", width, counters)
            yield from _conv(f"{p}.conv2", width, width, 3, bias=False)
            yield from _bn(f"{p}.bn2", width, counters)
            yield from _conv(f"{p}.conv3", width * EXPANSION, width, 1, bias=False)
            yield from _bn(f"{p}.bn3", width * EXPANSION, counters)
            if b == 0:
                yield from _conv(f"{p}.downsample.0", width * EXPANSION, cin, 1, bias=False)
                yield from _bn(f"{p}.downsample.1", width * EXPANSION, counters)
            cin = width * EXPANSION


def _extras(counters: bool) -> Iterator[tuple[str, Shape]]:
    # (attribute, [(cin, cout, kernel) of its two convs])
    for name, convs in (("layer5", [(2048, 512, 1), (512, 512, 3)]), ("layer6", [(512, 128, 1), (128, 256, 3)])):
        for position, (cin, cout, k) in zip((0, 3), convs):
            yield from _conv(f"{name}.{position}", cout, cin, k, bias=True)
            yield from _bn(f"{name}.{position + 1}", cout, counters)


def _fusion() -> Iterator[tuple[str, Shape]]:
    # latlayer_i maps the upper map's width to level i's width; smooth_i keeps level i's width.
    widths = {1: 256, 2: 512, 3: 1024}
    upper = {1: 512, 2: 1024, 3: 2048}
    for i in (3, 2, 1):
        yield from _conv(f"latlayer{i}", widths[i], upper[i], 1, bias=True)
    for i in (3, 2, 1):
        yield from _conv(f"smooth{i}", widths[i], widths[i], 1, bias=True)


def _fems() -> Iterator[tuple[str, Shape]]:
    for name, cin in SOURCE_WIDTHS.items():
        # (output, input) channels: two 256-wide convs on the source, then 128-wide ones on 256 / 128.
        convs = {"cpm1": (256, cin), "cpm2": (256, cin), "cpm3": (128, 256), "cpm4": (128, 256), "cpm5": (128, 128)}
        for conv, (cout, c) in convs.items():
            yield from _conv(f"{name}.{conv}", cout, c, 3, bias=True)


def _parts(level: int) -> int:
    """Face on every level, head from level 1, body from level 2."""
    return 1 + (level >= 1) + (level >= 2)


def _heads() -> Iterator[tuple[str, Shape]]:
    for kind in ("loc", "conf"):
        for level in range(6):
            parts = _parts(level)
            outputs = 4 * parts if kind == "loc" else 4 + 2 * (parts - 1)
            p = f"{kind}.{level}"
            yield from _conv(f"{p}.conv1", HEAD_WIDTH, FEM_OUTPUT, 3, bias=True)
            yield from _conv(f"{p}.conv2", HEAD_WIDTH, HEAD_WIDTH, 3, bias=True)
            yield from _conv(f"{p}.conv3", HEAD_WIDTH, HEAD_WIDTH, 3, bias=True)
            yield from _conv(f"{p}.conv4", outputs, HEAD_WIDTH, 1, bias=True)


def official_layout(with_batch_counters: bool = False) -> dict[str, Shape]:
    """Key -> shape of every tensor in the release's state dict."""
    layout: dict[str, Shape] = {}
    for part in (_resnet152(with_batch_counters), _extras(with_batch_counters), _fusion(), _fems(), _heads()):
        for key, shape in part:
            if key in layout:
                raise AssertionError(f"duplicate key in the transcription: {key}")
            layout[key] = shape
    return layout


def trainable_parameter_count() -> int:
    """Number of learnable values (BN running statistics excluded)."""
    total = 0
    for key, shape in official_layout().items():
        if key.endswith(("running_mean", "running_var")):
            continue
        n = 1
        for d in shape:
            n *= d
        total += n
    return total
