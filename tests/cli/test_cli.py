"""The vidpool command: subcommands, one convention, and a user's mistakes answered with one message
naming the key or file, exit status 2 and no traceback (before any data is read)."""
import os
import subprocess
import sys

import pytest
import torch

from vidpool.cli import COMMANDS
from vidpool.config import load_cfg
from vidpool.engine import checkpoint as ckpt

from ..engine.test_train import TINY

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEMO = "configs/demo/r3d10_softpool.yaml"


def vidpool(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "vidpool", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def mistake(*args, **kw):
    """Run a command that must be refused as the user's mistake; returns its stderr."""
    done = vidpool(*args, **kw)
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    return done.stderr


def test_help_lists_every_subcommand():
    done = vidpool("--help")
    assert done.returncode == 0
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    for name in ("train", "test", "predict", "export", "convert", "check-data", "cache-frames", "info",
                 "experiments", "submit", "visualize", "compare"):
        assert name in listed


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_subcommand_has_help(command):
    done = vidpool(command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"vidpool {command}" in done.stdout


def test_unknown_command_suggests_the_closest():
    assert "did you mean 'train'?" in mistake("trian")


def test_missing_config_file_is_named():
    err = mistake("train", "--cfg", "configs/no_such.yaml")
    assert "configs/no_such.yaml" in err and len(err.strip().splitlines()) == 1


def test_model_name_without_underscore_suggests_the_registered_one(tmp_path):
    err = mistake("train", "--cfg", DEMO, "MODEL.ARCH", "r3d50", "OUTPUT_DIR", tmp_path)
    assert "MODEL.ARCH 'r3d50'" in err and "did you mean 'r3d_50'?" in err and "BASE_WIDTH" not in err


def test_a_decoder_vidpool_lacks_is_a_config_error_before_any_video_is_read(tmp_path, synthetic_root):
    err = mistake("train", "--cfg", DEMO, "DATA.DECODER", "opencv", "DATA.PATH_TO_DATA_DIR",
                  os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", tmp_path / "run")
    assert "DATA.DECODER 'opencv' is not one of: pyav, decord, torchcodec" in err and "unreadable" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_every_problem_is_listed_at_once(tmp_path):
    err = mistake("train", "--cfg", DEMO, "TRAIN.BATCH_SIZE", "0", "DATA.PATH_TO_DATA_DIR", tmp_path / "nope",
                  "TRAIN.CHECKPOINT_FILE_PATH", tmp_path / "gone.pyth", "OUTPUT_DIR", tmp_path / "run")
    assert "3 problems" in err
    assert "TRAIN.BATCH_SIZE must be a number > 0, got 0" in err
    assert f"DATA.PATH_TO_DATA_DIR: no such folder: {tmp_path / 'nope'}" in err
    assert f"TRAIN.CHECKPOINT_FILE_PATH: no such file or run folder: {tmp_path / 'gone.pyth'}" in err


def test_missing_test_checkpoint(tmp_path, synthetic_root):
    err = mistake("test", "--cfg", DEMO, "--weights", tmp_path / "gone.pyth", "DATA.PATH_TO_DATA_DIR",
                  os.path.join(synthetic_root, "ucf101"))
    assert f"TEST.CHECKPOINT_FILE_PATH: no such file or run folder: {tmp_path / 'gone.pyth'}" in err


def test_type_mismatch_and_odd_overrides():
    assert "TRAIN.BATCH_SIZE" in mistake("train", "--cfg", DEMO, "TRAIN.BATCH_SIZE", "many")
    assert "KEY VALUE pairs" in mistake("train", "--cfg", DEMO, "SOLVER.MAX_EPOCH")


@pytest.mark.parametrize("args,hint", [
    (["train", "--config", DEMO], "use --cfg FILE"),
    (["train", DEMO], "give the config as --cfg " + DEMO),
    (["train", "--cfg", DEMO, "NUM_GPUS", "8"], "torchrun"),
    (["train", "--cfg", DEMO, "train.batch_size", "8"], "config keys are upper case: TRAIN.BATCH_SIZE"),
    (["predict", "--cfg", DEMO, "--weights", "w.pyth", "a.mp4", "--opts", "DEVICE", "cpu"], "no --opts needed"),
    (["train", "--cfg", DEMO, "TRAIN.BATCHSIZE", "8"], "did you mean TRAIN.BATCH_SIZE?"),
])
def test_habits_of_other_toolkits_get_a_pointer(args, hint):
    assert hint in mistake(*args)


def test_debug_shows_the_traceback(tmp_path):
    args = ["train", "--cfg", DEMO, "MODEL.ARCH", "r3d50"]
    assert "Traceback" in vidpool("--debug", *args).stderr
    assert "Traceback" in vidpool(*args, env={"VIDPOOL_DEBUG": "1"}).stderr


def test_the_message_goes_to_the_log_of_an_existing_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.txt").write_text("earlier\n")
    err = mistake("train", "--cfg", DEMO, "OUTPUT_DIR", run, "SOLVER.BASE_LR", "-1")
    assert "SOLVER.BASE_LR must be >= 0" in err
    log = (run / "log.txt").read_text()
    assert log.startswith("earlier\n") and "SOLVER.BASE_LR must be >= 0" in log


def test_tools_wrappers_are_the_subcommands():
    for script in ("train_net.py", "test_net.py"):
        done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", script), "--cfg", DEMO, "MODEL.ARCH",
                               "r3d50"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "did you mean 'r3d_50'?" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_grid_is_named(tmp_path):
    err = mistake("experiments", "--grid", tmp_path / "nope.yaml")
    assert f"--grid: no such file: {tmp_path / 'nope.yaml'}" in err


def test_convert_names_a_bad_architecture(tmp_path):
    err = mistake("convert", "--weights", tmp_path / "a.pth", "--out", tmp_path / "b.pyth", "--arch", "r3d50")
    assert "--arch 'r3d50'" in err and "did you mean 'r3d_50'?" in err


def _run_folder(tmp_path, epochs, mid_epoch=None):
    """A run folder with end-of-epoch checkpoints of a tiny model whose weights differ per epoch."""
    cfg = load_cfg(None, TINY + ["OUTPUT_DIR", str(tmp_path / "hacs")])
    from vidpool.models import build_model

    for epoch in epochs:
        torch.manual_seed(epoch)
        state = {"model": build_model(cfg).state_dict(), "epoch": epoch, "cfg": cfg.dump()}
        ckpt.save_checkpoint(ckpt.checkpoint_path(cfg.OUTPUT_DIR, epoch), state)
    if mid_epoch:
        ckpt.save_checkpoint(ckpt.checkpoint_path(cfg.OUTPUT_DIR, mid_epoch, 3), {"model": {}, "epoch": mid_epoch})
    return cfg


def test_a_run_folder_as_checkpoint_path_takes_its_last_epoch(tmp_path, caplog):
    cfg = _run_folder(tmp_path, [1, 2, 10], mid_epoch=10)  # 10 sorts after 2 only as a number
    last = ckpt.checkpoint_path(cfg.OUTPUT_DIR, 10)
    assert ckpt.resolve_weights_path(cfg.OUTPUT_DIR, "TRAIN.CHECKPOINT_FILE_PATH") == last
    assert ckpt.resolve_weights_path(os.path.join(cfg.OUTPUT_DIR, "checkpoints"), "K") == last
    assert ckpt.resolve_weights_path(last, "K") == last
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        ckpt.resolve_weights_path(str(tmp_path), "TRAIN.CHECKPOINT_FILE_PATH")


def test_fine_tuning_from_a_run_folder_loads_its_last_checkpoint(tmp_path):
    from vidpool.engine.trainer import build_training_model

    cfg = _run_folder(tmp_path, [1, 2, 3])
    ft = load_cfg(None, TINY + ["TRAIN.CHECKPOINT_FILE_PATH", cfg.OUTPUT_DIR, "TRAIN.FINETUNE", "True",
                                "OUTPUT_DIR", str(tmp_path / "ft")])
    model = build_training_model(ft, torch.device("cpu"))
    want = ckpt.load_checkpoint(ckpt.checkpoint_path(cfg.OUTPUT_DIR, 3))["model"]
    other = ckpt.load_checkpoint(ckpt.checkpoint_path(cfg.OUTPUT_DIR, 2))["model"]
    name = "conv1.weight" if "conv1.weight" in want else next(k for k in want if k.endswith("weight"))
    got = model.state_dict()[name]
    assert torch.equal(got, want[name]) and not torch.equal(got, other[name])


def test_overrides_start_at_the_first_config_key():
    from vidpool.cli._args import _valid_keys, split_overrides

    valid = _valid_keys()
    assert split_overrides(["--weights", "w.pyth", "a.mp4", "CLIP.MP4", "DEVICE", "cpu", "TEST.BATCH_SIZE", "4"],
                           valid) == (["--weights", "w.pyth", "a.mp4", "CLIP.MP4"], ["DEVICE", "cpu", "TEST.BATCH_SIZE", "4"])
    assert split_overrides(["--out", "OUTPUT_DIR", "TRAIN.BATCHSIZE", "8"], valid) == (
        ["--out", "OUTPUT_DIR"], ["TRAIN.BATCHSIZE", "8"])  # a folder named like a key, then a misspelt key
