"""CPU network latency of the DSFD and SHF models relative to ``scrfd_2.5g_kps``, and the cost of their
test-time pyramids, measured in one run.

    python benchmarks/family_latency.py --out benchmarks/results          # 1 thread, VGA, 3 blocks
    python benchmarks/family_latency.py --models scrfd_2.5g_kps shf_vgg16 --blocks 1 --runs 3

What is timed: ``model(images)`` under ``torch.inference_mode`` on the torch backend, fp32, one
``[1, 3, H, W]`` input, pre- and post-processing excluded. DSFD and SHF have no downloadable weights
here, so every model (the reference included) runs with random weights; post-processing is left out
because with random weights the number of candidates it sees means nothing. Each configuration is
timed ``--runs`` times after ``--warmup`` untimed calls, ``--blocks`` times round-robin over all
models; the table shows the median of the block medians and the ratio to the reference's.

Pyramid cost: for each ``--pyramid MODEL=PROTOCOL`` pair, the passes that protocol plans for a
``--size`` image (:func:`facescope.inference.tta.plan_passes`, the detector's pixel budget applied)
are run once each (protocols whose scales are factors of the detector's own resize take
that resize as 1, i.e. the original size); the figure is the sum of their forward times and its ratio to the same model's
single pass of the same run.

Writes ``<out>/family_latency.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MODELS = ("scrfd_2.5g_kps", "dsfd_vgg16", "dsfd_official", "shf_vgg16", "dsfd_mnet025", "shf_mnet025")
DEFAULT_PYRAMIDS = ("shf_vgg16=shf", "dsfd_official=dsfd")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(480, 640)`` (height, width)."""
    width, _, height = text.partition("x")
    if not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise argparse.ArgumentTypeError(f"--size must look like 640x480, got {text!r}")
    return int(height), int(width)


def parse_pyramid(text: str) -> tuple[str, str]:
    """``"shf_vgg16=shf"`` -> ``("shf_vgg16", "shf")``."""
    model, sep, protocol = text.partition("=")
    if not sep or not model or not protocol:
        raise argparse.ArgumentTypeError(f"--pyramid must look like MODEL=PROTOCOL, got {text!r}")
    return model, protocol


def build(name: str) -> Any:
    """The registered model ``name`` with random weights (seed 0), in eval mode."""
    import torch

    from facescope.models import create_model

    torch.manual_seed(0)
    return create_model(name).eval()


def forward_seconds(model: Any, hw: tuple[int, int], runs: int, warmup: int) -> list[float]:
    """Wall seconds of ``runs`` forward passes of a random ``[1, 3, *hw]`` input after ``warmup``."""
    import torch

    images = torch.randn(1, 3, *hw)
    times: list[float] = []
    with torch.inference_mode():
        for index in range(warmup + runs):
            start = time.perf_counter()
            model(images)
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


def pass_shapes(model_name: str, protocol: str, image_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """``(height, width)`` of every pass ``protocol`` plans for an ``image_hw`` image, padded as the
    model's input spec pads (so the timed tensor is what the network would see)."""
    from facescope.inference.tta import DEFAULT_MAX_PASS_PIXELS, get_tta_protocol, plan_passes
    from facescope.models import get_model_entry

    divisor = max(1, int(get_model_entry(model_name).input_spec.size_divisor))
    plans = plan_passes(get_tta_protocol(protocol), image_hw, max_pixels=DEFAULT_MAX_PASS_PIXELS)

    def padded(side: int) -> int:
        return -(-side // divisor) * divisor

    return [(padded(p.target_hw[0]), padded(p.target_hw[1])) for p in plans]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    models = {name: build(name) for name in args.models}
    per_block: dict[str, list[float]] = {name: [] for name in models}
    for block in range(args.blocks):
        for name, model in models.items():
            times = forward_seconds(model, args.size, args.runs, args.warmup)
            per_block[name].append(statistics.median(times))
            print(f"block {block + 1}/{args.blocks} {name}: {1000 * per_block[name][-1]:.1f} ms", flush=True)
    reference_ms = 1000 * statistics.median(per_block[args.reference])
    rows: dict[str, Any] = {}
    for name, medians in per_block.items():
        ms = 1000 * statistics.median(medians)
        rows[name] = {"ms": round(ms, 1), "ratio": round(ms / reference_ms, 2),
                      "block_medians_ms": [round(1000 * m, 1) for m in medians]}  # fmt: skip
    pyramids: dict[str, Any] = {}
    for model_name, protocol in args.pyramid:
        model = models.get(model_name) or build(model_name)
        shapes = pass_shapes(model_name, protocol, args.size)
        seconds = [forward_seconds(model, hw, 1, 0)[0] for hw in shapes]
        single = rows[model_name]["ms"] if model_name in rows else None
        total_ms = 1000 * sum(seconds)
        pyramids[f"{model_name}={protocol}"] = {
            "passes": len(shapes),
            "pass_hw": [list(hw) for hw in shapes],
            "pass_ms": [round(1000 * s, 1) for s in seconds],
            "total_ms": round(total_ms, 1),
            "ratio_to_single": round(total_ms / single, 1) if single else None,
        }
        print(f"pyramid {model_name}={protocol}: {len(shapes)} passes, {total_ms / 1000:.1f} s", flush=True)
    return {"reference": args.reference, "size_hw": list(args.size), "threads": args.threads,
            "runs": args.runs, "blocks": args.blocks, "models": rows, "pyramids": pyramids}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    height, width = result["size_hw"]
    lines = [f"| model | forward ms ({width}x{height}, {result['threads']} thread) | x {result['reference']} |",
             "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {name} | {row['ms']} | {row['ratio']} |" for name, row in result["models"].items()]
    for key, row in result["pyramids"].items():
        lines.append(f"| {key} pyramid ({row['passes']} passes) | {row['total_ms']} | x{row['ratio_to_single']} of its single pass |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--reference", default="scrfd_2.5g_kps")
    parser.add_argument("--pyramid", nargs="*", type=parse_pyramid, default=[parse_pyramid(p) for p in DEFAULT_PYRAMIDS])
    parser.add_argument("--size", type=parse_size, default=(480, 640), help="WIDTHxHEIGHT, default 640x480")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="folder for family_latency.json")
    args = parser.parse_args()
    from facescope.models import list_models

    unknown = [m for m in [*args.models, *(m for m, _ in args.pyramid)] if m not in list_models()]
    if unknown:
        parser.error(f"not registered: {', '.join(unknown)}")
    if args.reference not in args.models:
        parser.error(f"--reference {args.reference} must be one of --models")
    result = measure(args)
    result["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    print(markdown(result))
    if args.out is not None:
        from facescope.fileio import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "family_latency.json", json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
