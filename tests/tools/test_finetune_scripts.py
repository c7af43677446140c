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


@pytest.mark.parametrize("script,pair", [("finetune_ucf101.sh", ""), ("finetune_ucf101.sh", "i3d_ft"),
                                         ("finetune_ucf101.sh", "r3d50_from_k700_hara"),
                                         ("finetune_k700.sh", ""), ("finetune_k700.sh", "i3d")])
def test_wrappers_name_existing_max_and_softpool_configs(script, pair):
    res = _run([f"tools/{script}"] + ([pair] if pair else []), DRY_RUN="1")
    assert res.returncode == 0, res.stderr
    commands = [line.split() for line in res.stdout.splitlines() if "train_net.py" in line]
    configs = [c[c.index("--cfg") + 1] for c in commands]
    assert len(configs) == 2 and "softpool" not in configs[0] and "softpool" in configs[1]
    from vidpool.config import load_cfg

    pools = [load_cfg(os.path.join(ROOT, c)).MODEL.POOL for c in configs]
    assert pools == ["max", "softpool"]
    assert _run([f"tools/{script}", "no_such_pair"], DRY_RUN="1").returncode == 2


@pytest.mark.slow
def test_compare_trains_tests_both_and_runs_mcnemar(synthetic_root, tmp_path):
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
    assert "chi2 (continuity corrected, 1 dof)" in res.stdout and "softpool right" in res.stdout
