"""LR schedule and parameter groups, checkpoint files, accuracy and per-video aggregation, by hand."""
import math
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from vidpool.config import load_cfg
from vidpool.engine import checkpoint as ckpt
from vidpool.engine.meters import VideoAggregator, topk_correct
from vidpool.engine.optim import build_optimizer, lr_at, set_lr
from vidpool.models import create_model


def _solver(*overrides):
    return load_cfg(None, list(overrides)).SOLVER


def test_paper_step_schedule():
    s = _solver()  # defaults: 0.1, x0.1 at 40 and 80, 100 epochs
    assert [lr_at(s, e) for e in (0, 39.99, 40, 79.5, 80, 99.9)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_cosine_and_warmup():
    s = _solver("SOLVER.LR_POLICY", "cosine", "SOLVER.BASE_LR", "0.2", "SOLVER.MAX_EPOCH", "10",
                "SOLVER.COSINE_END_LR", "0.0", "SOLVER.WARMUP_EPOCHS", "2.0", "SOLVER.WARMUP_START_LR", "0.02")
    at2 = 0.1 * (1 + math.cos(math.pi * 0.2))  # the cosine value where warm-up ends
    assert lr_at(s, 0) == pytest.approx(0.02)
    assert lr_at(s, 1) == pytest.approx(0.02 + (at2 - 0.02) / 2)
    assert lr_at(s, 2) == pytest.approx(at2)
    assert lr_at(s, 5) == pytest.approx(0.1) and lr_at(s, 10) == pytest.approx(0.0)


def test_schedule_errors():
    model = create_model("r3d_10", 3, base_width=8)
    for bad in (["SOLVER.STEPS", "[5, 10]", "SOLVER.LRS", "[1, 0.1]"], ["SOLVER.STEPS", "[0, 10]"],
                ["SOLVER.LR_POLICY", "exp"]):
        with pytest.raises(ValueError, match="SOLVER"):
            build_optimizer(model, _solver(*bad))


def test_parameter_groups():
    model = create_model("r3d_10", 3, base_width=8)
    opt = build_optimizer(model, _solver("SOLVER.ZERO_WD_1D_PARAM", "True", "SOLVER.WEIGHT_DECAY", "0.001"),
                          backbone_lr_scale=0.1)
    set_lr(opt, 0.5)
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_id[id(model.fc.weight)]["lr"] == 0.5 and by_id[id(model.fc.weight)]["weight_decay"] == 0.001
    assert by_id[id(model.fc.bias)]["weight_decay"] == 0.0
    assert by_id[id(model.stem[0].weight)]["lr"] == pytest.approx(0.05)
    assert by_id[id(model.stem[1].weight)]["weight_decay"] == 0.0  # BN weight: 1-D
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_parameter_groups_through_ddp(tmp_path):
    """Under torchrun the engine hands build_optimizer the DistributedDataParallel wrapper."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                                         world_size=1)
    try:
        model = create_model("r3d_10", 3, base_width=8)
        opt = build_optimizer(nn.parallel.DistributedDataParallel(model), _solver(), backbone_lr_scale=0.1)
        set_lr(opt, 0.5)
        by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
        assert by_id[id(model.fc.weight)]["lr"] == 0.5
        assert by_id[id(model.stem[0].weight)]["lr"] == pytest.approx(0.05)
    finally:
        torch.distributed.destroy_process_group()


def test_checkpoints_atomic_latest_and_prefix(tmp_path):
    model = nn.Linear(3, 2)
    out = str(tmp_path)
    ckpt.save_checkpoint(ckpt.checkpoint_path(out, 1), {"epoch": 1, "model": model.state_dict()})
    ddp_style = {"module." + k: v + 1 for k, v in model.state_dict().items()}
    ckpt.save_checkpoint(ckpt.checkpoint_path(out, 2), {"epoch": 2, "model": ddp_style})
    # a write killed half way: the temporary file is not a checkpoint; a damaged newest file is passed over
    open(ckpt.checkpoint_path(out, 3) + ".tmp123", "wb").write(b"partial")
    open(ckpt.checkpoint_path(out, 4), "wb").write(b"garbage")
    assert [os.path.basename(p) for p in ckpt.list_checkpoints(out)] == [
        "checkpoint_epoch_00001.pyth", "checkpoint_epoch_00002.pyth", "checkpoint_epoch_00004.pyth"]
    state = ckpt.latest_checkpoint(out)
    assert state["epoch"] == 2 and state["path"].endswith("00002.pyth")
    torch.testing.assert_close(state["model"]["weight"], model.weight.detach() + 1)  # prefix stripped
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(str(tmp_path / "none.pyth"))


def test_rng_state_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = str(tmp_path / "r.pyth")
    ckpt.save_checkpoint(path, {"model": {}, "rng": ckpt.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"])  # weights_only loading
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_topk_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]])
    assert topk_correct(logits, torch.tensor([1, 2, 0]), (1, 2)) == {1: 1, 2: 2}
    assert topk_correct(logits, torch.tensor([1, 2, 0]), (1, 5)) == {1: 1, 5: 3}  # k capped at 3 classes


def test_video_aggregation_by_hand():
    """Video 0: views favour class 1 then 0; the mean of softmaxes decides. Video 1: one view
    unreadable, the other says class 2. Video 2: no readable view, counted as wrong."""
    agg = VideoAggregator(3, 3)
    logits = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([1, 1, 2, 2, 0])
    index = torch.tensor([0, 0, 1, 1, 2])
    valid = torch.tensor([True, True, True, False, False])
    agg.update(logits[:2], labels[:2], index[:2], valid[:2])
    other = VideoAggregator(3, 3)  # the other process's share
    other.update(logits[2:], labels[2:], index[2:], valid[2:])
    agg.merge(other)
    res = agg.results()
    e = math.e
    v0 = (torch.tensor([1, e ** 2, 1]) / (e ** 2 + 2) + torch.tensor([e, 1, 1]) / (e + 2)) / 2
    torch.testing.assert_close(res["scores"][0], v0.double())
    assert res["pred"].tolist() == [1, 2, -1]
    assert res["top1"] == pytest.approx(200 / 3) and res["unreadable"] == 1 and res["videos"] == 3
    # over the two readable videos both are right; per class (0: one wrong video, 1 and 2: right)
    assert res["top1_readable"] == 100 and res["readable_videos"] == 2
    assert res["mean_class_acc"] == pytest.approx(200 / 3) and res["mean_class_acc_readable"] == 100
    torch.testing.assert_close(res["top5_scores"][0], v0.double().sort(descending=True).values)
    part = agg.part()  # what a process sends: only the rows it saw
    assert part["index"].tolist() == [0, 1, 2] and part["scores"].shape == (3, 3)
