"""``facescope models`` and ``facescope info MODEL``: what is registered, and what it costs."""

from __future__ import annotations

import argparse

from facescope.cli import argtypes
from facescope.cli.common import add_model_arg_option, model_args_of


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("models", help="list architectures and pretrained weights")
    listing.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'scrfd_*'")
    listing.set_defaults(func=run_models)

    info = subparsers.add_parser(
        "info",
        help="parameters, GMACs, presets and weights of a model",
        description="Counts use the SCRFD paper's rule (mmcv 1.2: GroupNorm not counted) unless --rule says otherwise.",
    )
    info.add_argument("model", help="registered model name")
    info.add_argument(
        "--weights", help="a weights file (or release tag) to load: its recorded model options are shown and used"
    )
    add_model_arg_option(info)
    info.add_argument("--size", type=argtypes.size_hw, action="append", default=[], help="extra input size WxH (repeatable)")
    info.add_argument("--rule", default="mmcv1.2", choices=("mmcv1.2", "mmcv1.3"), help="MAC counting rule")
    info.set_defaults(func=run_info)


def run_models(args: argparse.Namespace) -> int:
    from facescope.cli.extras import missing_modules
    from facescope.models.registry import get_model_entry, list_models

    names = list_models(args.pattern)
    if not names:
        from facescope.errors import FacescopeError

        raise FacescopeError(f"no registered model matches '{args.pattern}'; `facescope models` lists them all")
    # parameter counts build each network (on the meta device): they need torch, the catalogue does not
    with_torch = not missing_modules("torch", ("torch",))
    print(f"{'model':<22} {'family':<11} {'params':>11}  pretrained (licence)   summary")
    for name in names:
        entry = get_model_entry(name)
        params = f"{_parameter_count(name):,}" if with_torch else "-"
        tags = ", ".join(s.tag for s in entry.weights) or "-"
        print(f"{name:<22} {entry.family:<11} {params:>11}  {tags:<22} {entry.summary}")
    if not with_torch:
        print('(params: counting them builds the networks, which needs PyTorch: pip install "facescope[torch]")')
    with_weights = [get_model_entry(n) for n in names if get_model_entry(n).weights]
    if with_weights:
        print("\npretrained weights:")
    for entry in with_weights:
        for spec in entry.weights:
            ap = spec.metrics.get("widerface_val", {})
            ap_text = "/".join(f"{ap[k]:.2f}" for k in ("easy", "medium", "hard") if k in ap)
            print(f"  {entry.name}.{spec.tag}: {spec.where()}")
            print(f"      sha256 {spec.sha256}; {spec.license}; WIDER val AP (published) {ap_text or 'n/a'}")
    return 0


def _parameter_count(name: str) -> int:
    from facescope.models.complexity import count_parameters
    from facescope.models.registry import build_on_meta

    return count_parameters(build_on_meta(name))


def run_info(args: argparse.Namespace) -> int:
    from facescope.cli.extras import require_extra

    require_extra("facescope info", "torch", ("torch",))
    from facescope.models.complexity import count_macs
    from facescope.models.options import describe_saved
    from facescope.models.registry import create_model, get_model_entry

    from facescope.inference.validate import check_input_memory

    entry = get_model_entry(args.model)
    for height, width in args.size:  # each size runs one real forward pass: refuse before allocating
        check_input_memory((height, width), 1, args.model, what="--size")
    model = create_model(args.model, args.weights, **model_args_of(args))
    vga = count_macs(model, (480, 640), args.rule)
    print(f"{entry.name} ({entry.family}): {entry.summary}")
    print(f"  options    : {describe_saved(model.model_args)}" + (f" (from {args.weights})" if args.weights else ""))
    print(f"  parameters : {vga.params:,}")
    print(f"  GMACs      : {vga.gmacs:.4f} at 640x480 (rule {args.rule})")
    for height, width in [size for size in args.size if tuple(size) != (480, 640)]:  # VGA is the line above
        print(f"  GMACs      : {count_macs(model, (height, width), args.rule).gmacs:.4f} at {width}x{height}")
    if entry.paper_metrics:
        print("  paper AP   : " + ", ".join(f"{k} {v:.2f}" for k, v in entry.paper_metrics.items()))
    print("  presets    : " + "; ".join(f"{name}: {p.description}" for name, p in entry.presets.items()))
    for spec in entry.weights:
        print(f"  weights    : {entry.name}.{spec.tag} ({spec.format}, {spec.license}; published numbers: preset '{spec.preset}')")
    return 0
