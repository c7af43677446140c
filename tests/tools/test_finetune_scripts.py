"""tools/finetune_*.sh: the pairs they name exist, and the chain trains, tests and compares."""
import os
import subprocess
import sys

import pytest

from tests.engine.test_train import TINY

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _run(args, **env):
    return subprocess.run(["bash"] + args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **env})


MODELS = ["r3d50", "r3d101", "r2plus1d50", "i3d", "srtg_r3d50", "srtg_r3d101", "srtg_r2plus1d50"]


@pytest.mark.parametrize("script,pair", [(s, m) for s in ("finetune_ucf101.sh", "finetune_k700.sh") for m in MODELS]
                         + [("finetune_ucf101.sh", ""), ("finetune_ucf101.sh", "r3d50_from_k700_hara"),
                            ("finetune_k700.sh", "")])
def test_wrappers_name_existing_max_and_softpool_configs(script, pair):
    res = _run([f"tools/{script}"] + ([pair] if pair else []), DRY_RUN="1")
    assert res.returncode == 0, res.stderr
    commands = [line.split() for line in res.stdout.splitlines() if "vidpool train" in line]
    configs = [c[c.index("--cfg") + 1] for c in commands]
    assert len(configs) == 2 and "softpool" not in configs[0] and "softpool" in configs[1]
    from vidpool.config import load_cfg

    pools = [load_cfg(os.path.join(ROOT, c)).MODEL.POOL for c in configs]
    assert pools == ["max", "softpool"]
    if pair and pair != "r3d50_from_k700_hara":  # both start from the HACS runs of the same model
        starts = [load_cfg(os.path.join(ROOT, c)).TRAIN.CHECKPOINT_FILE_PATH for c in configs]
        assert starts == [f"output/hacs_{pair}", f"output/hacs_{pair}_softpool"]
    assert _run([f"tools/{script}", "no_such_pair"], DRY_RUN="1").returncode == 2


@pytest.mark.parametrize("script", ["finetune_ucf101.sh", "finetune_k700.sh", "finetune_compare.sh"])
def test_scripts_have_help(script):
    res = _run([f"tools/{script}", "--help"])
    assert res.returncode == 0 and "usage" not in res.stderr and f"tools/{script}" in res.stdout
    assert "set -euo" not in res.stdout


@pytest.mark.slow
def test_compare_trains_tests_both_and_compares_them(synthetic_root, tmp_path):
    cfgs = []
    for pool in ("max", "softpool"):
        path = tmp_path / f"{pool}.yaml"
        path.write_text(f"MODEL:\n  POOL: {pool}\nOUTPUT_DIR: {tmp_path / pool}\n")
        cfgs.append(str(path))
    overrides = [v for k, v in zip(TINY[::2], TINY[1::2]) if k != "MODEL.POOL" for v in (k, v)]
    overrides += ["DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "SOLVER.MAX_EPOCH", "1"]
    res = _run(["tools/finetune_compare.sh", *cfgs, *overrides])
    assert res.returncode == 0, res.stderr[-2000:]
    assert all(os.path.exists(tmp_path / pool / "predictions.csv") for pool in ("max", "softpool"))
    assert "1 seed pair(s)" in res.stdout and "exact McNemar p" in res.stdout and "one seed pair" in res.stdout
