"""`facescope search asfd`: the bilevel supernet run, its outputs, its warm-up, its bit-exact resume, its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_faces import write_tiny_faces

from facescope.cli import main as cli_main
from facescope.models import create_model
from facescope.models.autofem import Genotype, architecture_parameters

RECIPE = "configs/asfd_supernet.yaml"


@pytest.fixture(scope="module")
def tiny_faces(tmp_path_factory):
    """Eight 96x128 images with two filled squares each (jsonl annotations)."""
    return write_tiny_faces(tmp_path_factory.mktemp("asfd_tiny"), count=8)


def _arguments(data, out, *extra):
    # halves of 4 images, batches of 2: 2 iterations per epoch; epoch 0 is the warm-up (network only)
    return [
        "search", "asfd", RECIPE, "--out", str(out), "--no-progress",
        "backbone_weights=null", f"data.train_annotations={data / 'train.jsonl'}", f"data.train_images={data}",
        "data.format=jsonl", "data.image_size=96", "data.batch_size=2", "data.workers=0",
        "optim.epochs=3", "optim.warmup_iters=2", "optim.milestones=[2]", "optim.step_options.architecture_start_epoch=1",
        "runtime.device=cpu", "runtime.amp=false", "runtime.log_interval=1",
        "model_args.backbone=mobilenet_v1_0.25", "model_args.width=16", "model_args.nodes=3", *extra,
    ]  # fmt: skip


def _architecture(out):
    state = torch.load(out / "last.pth", map_location="cpu", weights_only=True)["model"]
    return {k: v for k, v in state.items() if ".alpha." in k or ".beta." in k}


@pytest.fixture(scope="module")
def finished_search(tiny_faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("asfd_search")
    assert cli_main(_arguments(tiny_faces, out)) == 0
    return out


def test_the_search_writes_a_genotype_its_history_and_a_plot(finished_search):
    out = finished_search
    genotype = Genotype.read(out / "genotype.json")
    assert genotype.levels == 6 and all(len(cell) == 3 for cell in genotype.cpm)
    entries = json.loads((out / "arch_history.json").read_text())["entries"]
    assert [(e["epoch"], e["global_step"]) for e in entries] == [(1, 2), (2, 4), (3, 6)]
    assert entries[-1]["genotype"] == json.loads(genotype.to_json())
    assert (out / "arch_history.png").stat().st_size > 10_000
    # warm-up: the architecture weights did not move in epoch 0 (still the initial ~uniform softmax), then did
    first, last = (np.array(entries[i]["weights"]["cpm"][0][2]) for i in (0, -1))
    assert np.abs(first - 1 / first.size).max() < 1e-3 < np.abs(last - first).max()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "step" in m and "loss" in m]
    assert ["architecture_loss" in m for m in steps] == [False, False, True, True, True, True]
    # the genotype is a model option of the family
    model = create_model("asfd_d0", genotype=str(out / "genotype.json"))
    assert len(model.autofem.cpm[0][0].edges) == 3


def test_a_search_resumed_mid_epoch_ends_with_the_uninterrupted_runs_architecture(tiny_faces, finished_search, tmp_path):
    assert cli_main(_arguments(tiny_faces, tmp_path, "runtime.max_iters=3")) == 0  # stops in the middle of epoch 1
    assert torch.load(tmp_path / "last.pth", weights_only=True)["batch_in_epoch"] == 1
    assert cli_main(_arguments(tiny_faces, tmp_path, "--resume")) == 0
    resumed, uninterrupted = _architecture(tmp_path), _architecture(finished_search)
    assert resumed.keys() == uninterrupted.keys() and len(resumed) == len(architecture_parameters(create_model("asfd_supernet", backbone="mobilenet_v1_0.25", width=16, nodes=3)))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
    assert (tmp_path / "genotype.json").read_text() == (finished_search / "genotype.json").read_text()
    history = json.loads((tmp_path / "arch_history.json").read_text())["entries"]
    assert [(e["epoch"], e["global_step"]) for e in history] == [(1, 2), (2, 4), (3, 6)]  # the cut-short point is gone


def test_a_recipe_that_is_not_a_search_is_refused_before_any_work(tmp_path, capsys):
    cases = [
        (["configs/asfd_d0.yaml", "--out", str(tmp_path)], "model is 'asfd_d0'; the ASFD search trains 'asfd_supernet'"),
        ([RECIPE, "--out", str(tmp_path), "optim.step_strategy=standard", "optim.step_options={}"], "needs 'bilevel'"),
        ([RECIPE], "needs --out DIR"),
        ([RECIPE, "--out", str(tmp_path), "optim.epochs=20"], "architecture_start_epoch=20 is not before optim.epochs=20"),
        ([RECIPE, "--out", str(tmp_path / "new"), "--resume"], "new/last.pth does not exist"),
    ]
    for arguments, message in cases:
        assert cli_main(["search", "asfd", *arguments]) == 2
        assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _rank_main(rank, world_size, port, arguments):
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert cli_main(arguments) == 0


@pytest.mark.slow
def test_the_search_under_two_gloo_processes_matches_one_process(tiny_faces, tmp_path):
    """torchrun-style: every rank trains (the one-path forward leaves unused parameters: DDP is told), rank 0 writes."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = (
        "runtime.freeze_bn_stats=true",  # batch 1 per rank: BatchNorm statistics frozen
        "optim.epochs=2",
        # SGD for the logits here: Adam's first steps are lr * sign(gradient), which turns float-rounding differences
        # of tiny gradients between one and two processes into whole steps
        'optim.param_groups=[{pattern: "*.alpha.*", parameter_set: architecture, fixed_lr: 0.01}, '
        '{pattern: "*.beta.*", parameter_set: architecture, fixed_lr: 0.01}]',
    )
    assert cli_main(_arguments(tiny_faces, tmp_path / "single", *common)) == 0
    arguments = _arguments(tiny_faces, tmp_path / "ddp", *common, "data.batch_size=1")
    mp.spawn(_rank_main, args=(2, port, arguments), nprocs=2, join=True)
    single, ddp = _architecture(tmp_path / "single"), _architecture(tmp_path / "ddp")
    assert max(float((single[k] - ddp[k]).abs().max()) for k in single) < 1e-5
    assert (tmp_path / "ddp" / "genotype.json").read_text() == (tmp_path / "single" / "genotype.json").read_text()
