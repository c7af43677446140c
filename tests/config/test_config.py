"""Configuration loading and building a model from it."""
import pytest
import torch

from vidpool import ops
from vidpool.config import get_cfg, load_cfg
from vidpool.models import build_model, create_model


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.MODEL.POOL = "softpool"
    assert b.MODEL.POOL == "max"


def test_yaml_then_overrides_and_frozen(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("MODEL:\n  ARCH: r3d_18\n  POOL: softpool\n  NUM_CLASSES: 200\n")
    cfg = load_cfg(str(path), ["MODEL.NUM_CLASSES", "101"])
    assert (cfg.MODEL.ARCH, cfg.MODEL.POOL, cfg.MODEL.NUM_CLASSES) == ("r3d_18", "softpool", 101)
    with pytest.raises(AttributeError):
        cfg.MODEL.POOL = "max"


def test_unknown_keys_suggest_the_closest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MODEL:\n  HEAD_POLL: avg\n")
    with pytest.raises(KeyError, match="MODEL.HEAD_POLL.*did you mean MODEL.HEAD_POOL"):
        load_cfg(str(path))
    with pytest.raises(KeyError, match="did you mean MODEL.ARCH"):
        load_cfg(None, ["MODEL.ARHC", "i3d"])
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        load_cfg(None, ["MODEL.ARCH"])


def test_build_model_follows_model_pool_and_head_pool():
    cfg = load_cfg(None, ["MODEL.ARCH", "r3d_18", "MODEL.POOL", "softpool", "MODEL.HEAD_POOL", "softpool",
                          "MODEL.NUM_CLASSES", "7"])
    model = build_model(cfg)
    assert isinstance(model.pool, ops.SoftPool3d) and isinstance(model.head_pool, ops.AdaptiveSoftPool3d)
    assert model.dropout.p == cfg.MODEL.DROPOUT_RATE and model.fc.out_features == 7
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == count(create_model("r3d_18", 7))  # SoftPool changes no parameter count
    i3d = build_model(load_cfg(None, ["MODEL.ARCH", "i3d", "MODEL.POOL", "softpool"]))
    assert sum(isinstance(m, ops.SoftPool3d) for m in i3d.modules()) == 13


def test_build_model_passes_the_srtg_options():
    cfg = load_cfg(None, ["MODEL.ARCH", "srtg_r3d_18", "MODEL.SRTG_PLACE", "top", "MODEL.SRTG_GATE", "none"])
    model = build_model(cfg)
    block = model.layer2[0]
    assert block.place == "top" and block.sr.gate == "none"
    assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 400)
    wide = build_model(load_cfg(None, ["MODEL.ARCH", "srtg_r3d_50", "MODEL.SRTG_HIDDEN", "channels"]))
    assert wide.layer4[0].sr.lstm.hidden_size == 2048
