"""Engine: exact resume, multi-process (gloo) parity with one process, NaN guard, checkpoints."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from facescope.engine.checkpoint import load_checkpoint
from facescope.engine.trainer import TrainingDiverged, build_trainer, fit, run
from facescope.distributed import DistInfo
from engine_testing import tiny_config


def final_weights(path):
    return load_checkpoint(path)["model"]


def test_resume_mid_epoch_gives_identical_weights(tiny_dataset, tmp_path):
    straight = fit(tiny_config(tiny_dataset, tmp_path / "a", max_iters=5), progress=False)
    # Same run, stopped after 3 iterations (mid-epoch 2: 2 batches per epoch), then resumed.
    fit(tiny_config(tiny_dataset, tmp_path / "b", max_iters=3), progress=False)
    state = load_checkpoint(tmp_path / "b" / "last.pth")
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == (1, 1, 3)
    resumed = fit(tiny_config(tiny_dataset, tmp_path / "b", max_iters=5), resume="auto", progress=False)
    a, b = final_weights(straight), final_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert final_weights(straight)["bbox_head.stride_cls.(8, 8).bias"].ne(
        torch.full((2,), -4.595)).any()  # it did train


def test_checkpoint_is_loadable_as_weights(tiny_dataset, tmp_path):
    from facescope.models import create_model

    last = fit(tiny_config(tiny_dataset, tmp_path, max_iters=1), progress=False)
    model = create_model("scrfd_500m_kps", weights=last)
    assert torch.equal(model.state_dict()["neck.lateral_convs.0.conv.weight"], final_weights(last)["neck.lateral_convs.0.conv.weight"])
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_nan_loss_stops_with_a_clear_message(tiny_dataset, tmp_path, monkeypatch):
    trainer = build_trainer(tiny_config(tiny_dataset, tmp_path, max_iters=2), DistInfo(), torch.device("cpu"), False)
    original = trainer.criterion

    def poisoned(*args, **kwargs):
        result = original(*args, **kwargs)
        result.losses["box"] = result.losses["box"] * float("nan")
        return result

    monkeypatch.setattr(trainer, "criterion", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is not finite at epoch 1, step 0 \(cls=.*box=nan"):
        run(trainer, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world_size, port, root, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = tiny_config(root, out_dir, max_iters=3, freeze_bn_stats=True)
    config.data.batch_size = 4 // world_size
    fit(config, progress=False)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tiny_dataset, tmp_path):
    single = tiny_config(tiny_dataset, tmp_path / "single", max_iters=3, freeze_bn_stats=True)
    fit(single, progress=False)
    mp.spawn(_rank_main, args=(2, _free_port(), tiny_dataset, tmp_path / "ddp"), nprocs=2, join=True)
    a, b = final_weights(tmp_path / "single" / "last.pth"), final_weights(tmp_path / "ddp" / "last.pth")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    # Same maths, different summation order (gradient all-reduce): agreement to float32 rounding.
    assert worst < 1e-5, worst


@pytest.mark.shared
def test_periodic_widerface_validation_is_logged(tiny_dataset, tmp_path, shared_data):
    import json

    config = tiny_config(tiny_dataset, tmp_path)
    config.optim.epochs = 1
    config.eval.images = str(shared_data / "widerface/WIDER_val/images")
    config.eval.ground_truth = str(shared_data / "widerface/ground_truth")
    config.eval.interval = 1
    fit(config, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evaluation = [r for r in records if "val_ap_hard" in r]
    assert len(evaluation) == 1 and evaluation[0]["val_full_val"] == 0.0  # 38 of 3,226 images: mini-benchmark
    assert 0.0 <= evaluation[0]["val_ap_easy"] <= 1.0
    assert len(list((tmp_path / "val_epoch_1" / "predictions").rglob("*.txt"))) == 38


def test_retinaface_trains_through_the_engine_with_its_pipeline_and_backbone(tiny_dataset, tmp_path, shared_data):
    config = tiny_config(tiny_dataset, tmp_path, max_iters=2)
    config.model = "retinaface_mnet025"
    config.data.pipeline = "retinaface"
    config.data.crop_scales = (0.6, 0.8, 1.0)
    config.backbone_weights = str(shared_data / "weights/retinaface/mobilenetV1X0.25_pretrain.tar")
    config.loss = {"box_weight": 1.0}
    last = fit(config, progress=False)
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 2 and all("loss_cls" in r and "NaN" not in r for r in records)
    assert load_checkpoint(last)["config"]["loss"] == {"box_weight": 1.0}


def test_unknown_loss_setting_is_a_config_error(tiny_dataset, tmp_path):
    from facescope.errors import ConfigError

    config = tiny_config(tiny_dataset, tmp_path, max_iters=1)
    config.loss = {"box_wieght": 1.0}
    with pytest.raises(ConfigError, match=r"unknown loss setting 'loss.box_wieght'.*did you mean 'box_weight'"):
        fit(config, progress=False)
