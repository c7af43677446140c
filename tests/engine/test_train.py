"""End-to-end training and testing on the tiny synthetic set: outputs, seeding, resume after a kill,
fine-tuning to another class count, mixed precision, and DDP against a single process."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp

from vidpool.config import load_cfg
from vidpool.data.datasets.synthetic import make_synthetic_dataset
from vidpool.engine import test as run_test
from vidpool.engine import train
from vidpool.engine.checkpoint import checkpoint_path, load_checkpoint
from vidpool.engine.trainer import load_initial_weights, train_epoch
from vidpool.models import create_model

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
TINY = ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "8",
        "MODEL.NUM_CLASSES", "5", "MODEL.POOL", "softpool", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "8",
        "DATA.TRAIN_JITTER_SCALES", "[32, 36]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32",
        "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "8", "TEST.NUM_ENSEMBLE_VIEWS", "2", "TEST.NUM_SPATIAL_CROPS", "1",
        "DATA_LOADER.NUM_WORKERS", "0", "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[0, 1]",
        "SOLVER.LRS", "[1, 0.1]", "LOG_PERIOD", "0"]


def tiny_cfg(root, out, *extra):
    return load_cfg(None, TINY + ["DATA.PATH_TO_DATA_DIR", os.path.join(root, "ucf101"), "OUTPUT_DIR", str(out)]
                    + list(extra))


def _stats(out, kind="epoch"):
    """The records of one kind in OUTPUT_DIR/stats.jsonl (epoch records carry no "kind")."""
    with open(os.path.join(out, "stats.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("kind", "epoch") == kind]


def test_two_epochs_write_checkpoints_stats_events_and_predictions(synthetic_root, tmp_path):
    cfg = tiny_cfg(synthetic_root, tmp_path)
    train(cfg)
    for name in ("config.yaml", "log.txt", "checkpoints/checkpoint_epoch_00001.pyth",
                 "checkpoints/checkpoint_epoch_00002.pyth"):
        assert os.path.isfile(tmp_path / name), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "runs"))
    stats = _stats(tmp_path)
    assert [s["epoch"] for s in stats] == [1, 2]
    assert [s["lr"] for s in stats] == pytest.approx([0.01, 0.001])  # the step schedule by epoch
    for key in ("train_loss", "train_top1", "val_top1", "val_top5", "epoch_time_s", "clips_per_s", "num_frames",
                "crop_size"):
        assert key in stats[1], key
    assert load_cfg(str(tmp_path / "config.yaml")).MODEL.BASE_WIDTH == 8  # the resolved config, loadable
    state = load_checkpoint(str(tmp_path / "checkpoints/checkpoint_epoch_00002.pyth"))
    assert state["epoch"] == 2 and "optimizer" in state and "rng" in state
    summary = run_test(cfg)
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["videos"] == 14 and summary["views"] == 2
    correct = sum(int(r["predicted_label"]) == int(r["true_label"]) for r in rows)
    assert summary["video_top1"] == pytest.approx(100 * correct / len(rows))
    with open(tmp_path / "confusion_matrix.csv") as f:
        matrix = [list(map(int, r[1:])) for r in list(csv.reader(f))[1:]]
    assert sum(map(sum, matrix)) == 14 and sum(matrix[i][i] for i in range(5)) == correct


def test_same_seed_same_losses(synthetic_root, tmp_path):
    losses = []
    for run in ("a", "b"):
        train(tiny_cfg(synthetic_root, tmp_path / run, "SOLVER.MAX_EPOCH", "1", "TENSORBOARD.ENABLE", "False"))
        losses.append(_stats(tmp_path / run)[0]["train_loss"])
    assert losses[0] == losses[1]
    train(tiny_cfg(synthetic_root, tmp_path / "c", "SOLVER.MAX_EPOCH", "1", "RNG_SEED", "5", "TRAIN.EVAL_PERIOD", "0"))
    stats = _stats(tmp_path / "c")[0]
    assert stats["train_loss"] != losses[0]
    assert "val_top1" not in stats and "val_top1" in _stats(tmp_path / "a")[0]  # EVAL_PERIOD 0: no validation
    with pytest.raises(ValueError, match="EVAL_PERIOD"):
        train(tiny_cfg(synthetic_root, tmp_path / "d", "TRAIN.EVAL_PERIOD", "-1"))
    with pytest.raises(ValueError, match="32 clips per process is more than the 26 training clips"):
        train(tiny_cfg(synthetic_root, tmp_path / "e", "TRAIN.BATCH_SIZE", "32"))


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(synthetic_root, tmp_path):
    """A run killed in epoch 2 and started again ends with the weights, optimizer state and RNG state
    of an uninterrupted run, after the same per-epoch losses (dropout on, so the restored RNG matters)."""
    def args(out):
        return [sys.executable, os.path.join(ROOT, "tools", "train_net.py")] + TINY + [
            "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(out),
            "SOLVER.MAX_EPOCH", "3", "SOLVER.STEPS", "[0, 2]", "TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False",
            "MODEL.DROPOUT_RATE", "0.5"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = subprocess.run(args(whole), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    proc = subprocess.Popen(args(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = checkpoint_path(str(killed), 1)
    deadline = time.time() + 120
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # in the middle of epoch 2
    proc.wait()
    assert os.path.exists(first) and not os.path.exists(checkpoint_path(str(killed), 2))
    done = subprocess.run(args(killed), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    a = load_checkpoint(checkpoint_path(str(whole), 3))
    b = load_checkpoint(checkpoint_path(str(killed), 3))
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    whole_losses = {s["epoch"]: s["train_loss"] for s in _stats(whole)}
    resumed_losses = {s["epoch"]: s["train_loss"] for s in _stats(killed)}
    assert resumed_losses == whole_losses and len(whole_losses) == 3
    # without restoring the model the next losses would differ: the run did learn in epoch 1
    assert whole_losses[2] != whole_losses[1]


def test_finetune_to_another_class_count(synthetic_root, tmp_path):
    train(tiny_cfg(synthetic_root, tmp_path / "src", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False"))
    source = str(tmp_path / "src" / "checkpoints" / "checkpoint_epoch_00001.pyth")
    three = tmp_path / "three"
    make_synthetic_dataset(str(three), num_videos=15, num_classes=3, frames=24, fps=8, size=(48, 64), workers=1,
                           progress=False)
    model = create_model("r3d_10", 3, pool="softpool", base_width=8)
    load_initial_weights(model, source, tiny_cfg(str(three), tmp_path / "x", "MODEL.NUM_CLASSES", "3",
                                                  "MODEL.POOL", "softpool"), finetune=True)
    src = load_checkpoint(source)["model"]
    assert torch.equal(model.layer4[0].conv1[0].weight, src["layer4.0.conv1.0.weight"])
    assert model.fc.out_features == 3
    cfg = tiny_cfg(str(three), tmp_path / "ft", "MODEL.NUM_CLASSES", "3", "TRAIN.FINETUNE", "True",
                   "TRAIN.CHECKPOINT_FILE_PATH", source, "TRAIN.FREEZE_STAGES", "3", "TRAIN.BACKBONE_LR_SCALE", "0.1",
                   "SOLVER.MAX_EPOCH", "1")
    stats = train(cfg)
    assert stats["epoch"] == 1
    tuned = load_checkpoint(str(tmp_path / "ft" / "checkpoints" / "checkpoint_epoch_00001.pyth"))["model"]
    assert torch.equal(tuned["stem.0.weight"], src["stem.0.weight"])  # frozen stage unchanged
    assert not torch.equal(tuned["layer4.0.conv1.0.weight"], src["layer4.0.conv1.0.weight"])
    with pytest.raises(ValueError, match="NUM_CLASSES is 5"):
        train(tiny_cfg(str(three), tmp_path / "bad"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, batches, cfg, out):
    """One process of a 2-process gloo group: one epoch of train_epoch on its half of each batch."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.distributed.init_process_group("gloo")
    model = _frozen_model()
    model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    local = [{k: v[rank::world] if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    stats = train_epoch(model, local, opt, torch.amp.GradScaler("cpu", enabled=False), cfg, 0, torch.device("cpu"))
    if rank == 0:
        torch.save({"fc": model.module.fc.state_dict(), "stats": stats}, out)
    torch.distributed.destroy_process_group()


def _frozen_model():
    """BN everywhere frozen (running statistics), so a batch split over processes computes exactly
    what the whole batch does in one process; only the classifier trains."""
    from vidpool.models.heads import freeze_stages

    torch.manual_seed(0)
    model = create_model("r3d_10", 5, pool="softpool", base_width=8)
    freeze_stages(model, 6)
    return model


def test_ddp_two_processes_match_one(tmp_path):
    cfg = load_cfg(None, ["SOLVER.BASE_LR", "0.5", "SOLVER.LRS", "[1, 1, 1]", "LOG_PERIOD", "0"])
    g = torch.Generator().manual_seed(1)
    batches = [{"clip": torch.randn(4, 3, 4, 32, 32, generator=g), "label": torch.randint(0, 5, (4,), generator=g),
                "skipped": []} for _ in range(3)]
    out = str(tmp_path / "ddp.pt")
    # spawn, not fork: a child forked after the parent ran OpenMP regions can hang in its first one.
    mp.start_processes(_ddp_worker, args=(2, _free_port(), batches, cfg, out), nprocs=2, start_method="spawn")
    ddp = torch.load(out)
    model = _frozen_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    single = train_epoch(model, batches, opt, torch.amp.GradScaler("cpu", enabled=False), cfg, 0, torch.device("cpu"))
    torch.testing.assert_close(ddp["fc"]["weight"], model.fc.weight.detach(), rtol=1e-5, atol=1e-6)
    assert ddp["stats"]["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert ddp["stats"]["samples"] == single["samples"] == 12


@pytest.mark.slow
def test_torchrun_run_matches_a_single_process_on_its_checkpoint(synthetic_root, tmp_path):
    """Two torchrun processes: validation metrics reduced over both and test predictions merged
    over both equal what one process computes with the same checkpoint."""
    from vidpool.data import build_loader
    from vidpool.engine.trainer import evaluate

    ddp = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
            os.path.join(ROOT, "tools", "train_net.py")] + TINY + [
        "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(ddp),
        "SOLVER.MAX_EPOCH", "1", "TEST.NUM_SPATIAL_CROPS", "3"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [s["epoch"] for s in _stats(ddp)] == [1]  # rank 0 alone writes
    path = checkpoint_path(str(ddp), 1)
    single = tmp_path / "single"
    cfg = tiny_cfg(synthetic_root, single, "TEST.CHECKPOINT_FILE_PATH", path, "TEST.NUM_SPATIAL_CROPS", "3")
    summary = run_test(cfg)
    with open(ddp / "predictions.csv") as f, open(single / "predictions.csv") as g:
        merged, alone = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert len(merged) == len(alone) == 14  # every test video once over both processes
    for a, b in zip(merged, alone):  # scores: other batch compositions, other rounding
        scores = [a.pop("top5_scores"), b.pop("top5_scores")]
        assert a == b
        assert [float(v) for v in scores[0].split()] == pytest.approx([float(v) for v in scores[1].split()], abs=1e-4)
    top5 = sum(r["true_label"] in r["top5_labels"].split() for r in merged)
    assert summary["video_top5"] == pytest.approx(100 * top5 / 14)
    ddp_test = _stats(ddp, "test")
    assert len(ddp_test) == 1 and ddp_test[0]["test_video_top1"] == pytest.approx(summary["video_top1"])
    model = create_model("r3d_10", 5, pool="softpool", base_width=8)
    model.load_state_dict(load_checkpoint(path)["model"])
    val = evaluate(model, build_loader(cfg, "val"), cfg, torch.device("cpu"))
    stats = _stats(ddp)[0]
    assert stats["val_top1"] == pytest.approx(val["top1"]) and stats["val_top5"] == pytest.approx(val["top5"])
    assert stats["val_loss"] == pytest.approx(val["loss"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("workers,cache", [(0, False), (2, True)])
def test_two_runs_of_one_seed_give_the_same_predictions(synthetic_root, tmp_path, workers, cache):
    """Train and test twice with the same seed (dropout on, loader workers or not, decoding or the
    frame cache): the same predictions.csv, byte for byte, and the same weights."""
    from vidpool.engine import test as run_test

    extra = ["DATA_LOADER.NUM_WORKERS", str(workers), "MODEL.DROPOUT_RATE", "0.5", "TENSORBOARD.ENABLE", "False",
             "TEST.ENABLE", "False"]
    if cache:
        extra += ["DATA.FRAME_CACHE", str(tmp_path / "cache")]
    runs = []
    for name in ("first", "second"):
        cfg = tiny_cfg(synthetic_root, tmp_path / name, *extra)
        train(cfg)
        run_test(cfg)
        runs.append(tmp_path / name)
    assert (runs[0] / "predictions.csv").read_bytes() == (runs[1] / "predictions.csv").read_bytes()
    a, b = (load_checkpoint(str(r / "checkpoints" / "checkpoint_epoch_00002.pyth"))["model"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
