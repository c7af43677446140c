"""TRAIN.CHECKPOINT_FILE_PATH and TEST.CHECKPOINT_FILE_PATH take other code bases' files."""
import json
import os

import torch

from tests.engine.test_train import tiny_cfg
from tests.weights.sources import HaraResNet, randomise
from vidpool.engine import checkpoint as ckpt
from vidpool.engine import test as run_test
from vidpool.engine import train


def _hara_file(tmp_path, classes):
    src = randomise(HaraResNet(10, n_classes=classes, widen_factor=0.125))  # r3d_10 at base width 8
    path = str(tmp_path / "r3d10.pth")
    torch.save({"arch": "resnet-10", "epoch": 200, "state_dict": {"module." + k: v for k, v in
                                                                  src.state_dict().items()}}, path)
    return src, path


def test_training_starts_from_a_hara_file_with_softpool_and_new_classes(synthetic_root, tmp_path):
    src, path = _hara_file(tmp_path, 7)
    out = tmp_path / "ft"
    # LR 0: the weights on disk after an epoch are the ones the run started from
    train(tiny_cfg(synthetic_root, out, "TRAIN.CHECKPOINT_FILE_PATH", path, "TRAIN.FINETUNE", "True",
                   "TRAIN.CHECKPOINT_TYPE", "hara", "SOLVER.BASE_LR", "0.0", "SOLVER.MAX_EPOCH", "1",
                   "TEST.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0"))
    saved = ckpt.load_checkpoint(ckpt.checkpoint_path(str(out), 1))["model"]
    assert torch.equal(saved["stem.0.weight"], src.conv1.weight)
    assert torch.equal(saved["layer4.0.downsample.0.weight"], src.layer4[0].downsample[0].weight)
    assert saved["fc.weight"].shape == (5, 64)


def test_testing_a_hara_file(synthetic_root, tmp_path):
    _, path = _hara_file(tmp_path, 5)
    out = tmp_path / "t"
    summary = run_test(tiny_cfg(synthetic_root, out, "TEST.CHECKPOINT_FILE_PATH", path, "MODEL.POOL", "max"))
    assert summary["videos"] > 0
    with open(os.path.join(out, "stats.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [200]  # the file's own epoch
