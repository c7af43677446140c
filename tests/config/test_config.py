"""Configuration loading and building a model from it."""
import glob
import os

import pytest
import torch

from vidpool import ops
from vidpool.config import get_cfg, load_cfg
from vidpool.config.check import check_cfg
from vidpool.engine.multigrid import multigrid_solver
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


CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
SHIPPED = sorted(os.path.relpath(p, CONFIGS) for p in glob.glob(os.path.join(CONFIGS, "*", "*.yaml"))
                 if not os.path.basename(p).startswith("_") and not p.startswith(os.path.join(CONFIGS, "experiments")))
GRIDS = sorted(glob.glob(os.path.join(CONFIGS, "experiments", "*.yaml")))  # vidpool experiments grids


@pytest.mark.parametrize("path", GRIDS, ids=os.path.basename)
def test_shipped_grid_loads_and_every_cell_config_builds(path):
    from vidpool.experiments import load_grid

    grid = load_grid(path)  # every cell's config loads (unknown keys or values fail here)
    cells = grid.cells()
    assert grid.baseline and grid.seed_key and len(grid.axes[grid.seed_key]) >= 3
    for arch in grid.axes.get("MODEL.ARCH", []):
        cell = next(c for c in cells if c.values["MODEL.ARCH"] == arch)
        cfg = load_cfg(grid.base, cell.override_list())
        with torch.device("meta"):
            model = build_model(cfg).eval()  # I3D's last stage is 1x1x1 at this size: no batch statistics
        out = model(torch.empty(1, 3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE,
                                device="meta"))
        assert out.shape == (1, cfg.MODEL.NUM_CLASSES)


def test_every_dataset_has_its_configs():
    names = {d: {os.path.basename(p) for p in SHIPPED if p.startswith(d + os.sep)} for d in
             ("hacs", "kinetics700", "ucf101", "demo")}
    models = ["r3d50", "r3d101", "r2plus1d50", "i3d", "srtg_r3d50", "srtg_r2plus1d50", "srtg_r3d101"]
    paper = {m + pool for m in models for pool in ("", "_softpool")}  # every backbone with both poolings
    assert names["hacs"] == {f"{n}.yaml" for n in paper}
    assert names["kinetics700"] == {f"{n}_ft.yaml" for n in paper}
    # plus the pooling swap on 3D-ResNets-PyTorch's published Kinetics-700 r3d-50, max and SoftPool
    assert names["ucf101"] == {f"{n}_ft.yaml" for n in paper} | {"r3d50_from_k700_hara.yaml",
                                                                "r3d50_softpool_from_k700_hara.yaml"}
    assert names["demo"] == {"r3d10_softpool.yaml", "r3d10_max.yaml", "r3d10_softpool_steps.yaml",
                             "r3d10_softpool_multigrid.yaml"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_and_builds(name):
    cfg = load_cfg(os.path.join(CONFIGS, name))
    with torch.device("meta"):  # the real architecture, no memory
        model = build_model(cfg)
    classes = {"hacs": 200, "kinetics": 700, "ucf101": 101}
    expected = 10 if name.startswith(("demo", "bench")) else classes[cfg.TRAIN.DATASET]  # the synthetic set
    assert cfg.MODEL.NUM_CLASSES == expected and cfg.TRAIN.DATASET == cfg.TEST.DATASET
    out = model(torch.empty(1, 3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE,
                            device="meta"))
    assert out.shape == (1, expected)
    stem = name.split(os.sep)[1].replace("_ft.yaml", "").replace(".yaml", "")
    wants_softpool = "softpool" in stem
    assert (cfg.MODEL.POOL == "softpool") == wants_softpool, cfg.MODEL.POOL
    if "_from_k700_hara" in name:  # published weights, as that code base trained them
        assert (cfg.TRAIN.CHECKPOINT_FILE_PATH, cfg.TRAIN.CHECKPOINT_TYPE) == ("weights/r3d50_K_200ep.pth", "hara")
        assert cfg.TRAIN.FINETUNE and cfg.MODEL.ARCH == "r3d_50" and cfg.DATA.TRAIN_CROP_SIZE == 112
    if name.endswith("_ft.yaml"):
        # fine-tuning starts from the HACS run folder of the same model (its last checkpoint, whatever
        # epoch the run ended at: 150 with multigrid, 100 without)
        base = load_cfg(os.path.join(CONFIGS, "hacs", stem + ".yaml"))
        assert cfg.MODEL.ARCH == base.MODEL.ARCH and cfg.TRAIN.FINETUNE
        assert cfg.TRAIN.CHECKPOINT_FILE_PATH == base.OUTPUT_DIR
        assert cfg.OUTPUT_DIR != base.OUTPUT_DIR
        assert not (cfg.MULTIGRID.LONG_CYCLE or cfg.MULTIGRID.SHORT_CYCLE)
    elif name.startswith("hacs"):
        assert cfg.MULTIGRID.LONG_CYCLE and cfg.MULTIGRID.SHORT_CYCLE  # as the paper trains
    multigrid_solver(cfg)  # the schedule is computable
    check_cfg(cfg)  # values and names pass the pre-flight check (files are the user's to provide)
    if "srtg" in name:  # says which network it builds
        assert "published network" in open(os.path.join(CONFIGS, name)).read()
