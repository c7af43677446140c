"""Tools that run a checkpoint build the model it was trained as: a SoftPool checkpoint is never run
as a max-pool network (its pooling layers hold no tensors, so loading alone cannot tell)."""
import json
import os

import pytest
import torch

from vidpool.config import load_cfg
from vidpool.config.check import ConfigError
from vidpool.models import build_model
from vidpool.weights import model_from_checkpoint

VIDEOS = os.path.join(os.path.dirname(__file__), "..", "assets", "videos")
CLIP = os.path.join(VIDEOS, "arm_wrestling.mp4")
SOFT = ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "7", "MODEL.POOL", "softpool",
        "MODEL.HEAD_POOL", "max", "DATA.NUM_FRAMES", "4", "DATA.TEST_CROP_SIZE", "40", "TEST.NUM_SPATIAL_CROPS", "1",
        "TEST.BATCH_SIZE", "4", "TEST.NUM_ENSEMBLE_VIEWS", "2", "DATA_LOADER.NUM_WORKERS", "0", "DEVICE", "cpu"]


def _checkpoint(tmp_path, overrides, epoch=3, name="run.pyth"):
    """A run checkpoint as the trainer writes it: weights, the config, the epoch."""
    cfg = load_cfg(None, overrides)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = str(tmp_path / name)
    torch.save({"model": model.state_dict(), "cfg": cfg.dump(), "epoch": epoch}, path)
    return path, model, cfg


def test_the_model_is_built_from_the_checkpoints_config(tmp_path):
    path, trained, _ = _checkpoint(tmp_path, SOFT)
    model, cfg, report = model_from_checkpoint(path)
    assert (cfg.MODEL.POOL, cfg.MODEL.HEAD_POOL, cfg.MODEL.BASE_WIDTH, cfg.MODEL.NUM_CLASSES) == ("softpool", "max", 8, 7)
    x = torch.randn(2, 3, 4, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x), rtol=0, atol=0)
        # the same tensors in the default max-pool network compute something else: what used to happen
        plain = build_model(load_cfg(None, [k if k != "softpool" else "max" for k in SOFT]))
        plain.load_state_dict(trained.state_dict())
        assert not torch.allclose(plain.eval()(x), trained(x))


def test_a_config_that_describes_another_model_is_an_error_naming_both(tmp_path):
    path, _, _ = _checkpoint(tmp_path, SOFT)
    other = load_cfg(None, [v if v != "softpool" else "max" for v in SOFT])
    with pytest.raises(ConfigError, match=r"MODEL.POOL 'max' in --cfg, 'softpool' in the checkpoint"):
        model_from_checkpoint(path, other)
    model_from_checkpoint(path, load_cfg(None, SOFT))  # the same model: fine


def test_a_checkpoint_of_another_code_base_needs_a_config(tmp_path):
    path = str(tmp_path / "bare.pth")
    torch.save(build_model(load_cfg(None, SOFT)).state_dict(), path)
    with pytest.raises(ConfigError, match="carries no vidpool config"):
        model_from_checkpoint(path)
    model, cfg, _ = model_from_checkpoint(path, load_cfg(None, SOFT))
    assert cfg.MODEL.POOL == "softpool"


@pytest.mark.parametrize("epoch,gate_from,gated", [(2, 5, False), (9, 5, True), (0, 5, True)])
def test_srtg_gates_follow_the_checkpoints_epoch(tmp_path, epoch, gate_from, gated):
    """As testing sets them: the gates of the last epoch trained (epoch 0: a converted file, gates on)."""
    path, _, _ = _checkpoint(tmp_path, SOFT[:1] + ["srtg_r3d_18"] + SOFT[2:] + ["MODEL.SRTG_GATE_FROM_EPOCH",
                                                                               str(gate_from)], epoch=epoch)
    model, _, _ = model_from_checkpoint(path)
    blocks = [m for m in model.modules() if hasattr(m, "gate_from_epoch")]
    assert blocks and all((m.epoch >= m.gate_from_epoch) == gated for m in blocks)


def test_predict_and_export_without_cfg_use_the_checkpoints_model(tmp_path, capsys):
    from vidpool.cli import export, predict

    path, trained, cfg = _checkpoint(tmp_path, SOFT)
    assert predict.main(["--weights", path, "--json", "--topk", "7", CLIP]) == 0
    out = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(out) == 7 and abs(sum(t["prob"] for t in out) - 1) < 1e-5
    # the same with the right --cfg; a max-pool --cfg is refused, naming both values
    cfg_file = tmp_path / "soft.yaml"
    cfg_file.write_text(cfg.dump())
    assert predict.main(["--cfg", str(cfg_file), "--weights", path, "--json", "--topk", "7", CLIP]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"] == out
    max_file = tmp_path / "max.yaml"
    max_file.write_text(cfg.dump().replace("POOL: softpool", "POOL: max"))
    assert predict.main(["--cfg", str(max_file), "--weights", path, CLIP]) == 2
    assert "MODEL.POOL 'max' in --cfg, 'softpool' in the checkpoint" in capsys.readouterr().err
    onnx = str(tmp_path / "m.ts")
    assert export.main(["--weights", path, "--format", "torchscript", "--out", onnx, "--batch", "2"]) == 0
    x = torch.randn(2, 3, 4, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(onnx)(x), trained(x), rtol=1e-4, atol=1e-5)
