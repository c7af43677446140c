"""vidpool submit with submitit's local executor: a 2-task job trains and tests; SIGUSR1 to one
task stops both after a checkpoint, and the requeued job resumes there and finishes."""
import os
import signal
import subprocess
import time

import pytest

from vidpool.engine import checkpoint as ckpt

from ..engine.test_train import TINY


def _start_job(synthetic_root, tmp_path, epochs: int):
    """A 2-task local job and the pid of its task 1, once the run has a checkpoint 2 steps into epoch 2."""
    from vidpool.cli import submit as tool

    import submitit

    out = tmp_path / "run"
    overrides = TINY + ["DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(out),
                        "SOLVER.MAX_EPOCH", str(epochs), "SOLVER.STEPS", "[0, 2]", "TRAIN.BATCH_SIZE", "4",
                        "TRAIN.CHECKPOINT_ITERS", "2", "TENSORBOARD.ENABLE", "False", "DEVICE", "cpu"]
    executor = submitit.AutoExecutor(folder=str(tmp_path / "jobs"), cluster="local")
    executor.update_parameters(timeout_min=10, tasks_per_node=2, gpus_per_node=0)
    job = executor.submit(tool.TrainJob(None, overrides))
    deadline = time.time() + 240
    target = ckpt.checkpoint_path(str(out), 1, 2)  # 2 steps into epoch 2
    while not os.path.exists(target) and time.time() < deadline and not job.done():
        time.sleep(0.05)
    assert os.path.exists(target), job.stderr()
    tasks = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True).stdout.split()
    rank1 = [int(p) for p in tasks if b"SUBMITIT_LOCAL_GLOBALID=1\0" in open(f"/proc/{p}/environ", "rb").read()]
    assert len(rank1) == 1
    return job, rank1[0], out


@pytest.mark.slow
def test_scancel_stops_the_job_after_a_checkpoint_and_does_not_requeue_it(synthetic_root, tmp_path):
    """SIGTERM (scancel) ends the job: both tasks stop after a checkpoint and nothing runs again."""
    job, rank1, out = _start_job(synthetic_root, tmp_path, epochs=20)
    os.kill(rank1, signal.SIGTERM)
    results = job.results()
    newest = ckpt.list_checkpoints(str(out))[-1]
    assert [r["stopped"] for r in results] == [newest, newest], results
    assert ckpt.progress_of(newest) < (20, 0)
    assert "resumed from" not in open(out / "log.txt").read()  # no second run of the job


@pytest.mark.slow
def test_local_job_trains_is_preempted_requeued_and_finishes(synthetic_root, tmp_path):
    job, rank1, out = _start_job(synthetic_root, tmp_path, epochs=3)
    os.kill(rank1, signal.SIGUSR1)
    result = job.results()[0]
    assert result["videos"] == 14  # the requeued job resumed, finished training and tested
    log = open(out / "log.txt").read()
    assert "resumed from" in log and "iterations done" in log
    assert [s["epoch"] for s in map(__import__("json").loads, open(out / "stats.jsonl"))
            if s.get("kind", "epoch") == "epoch"] == [1, 2, 3]


def test_a_requeued_job_keeps_the_config_as_submitted(synthetic_root, tmp_path, monkeypatch):
    """Editing the YAML after submitting does not change the running experiment's requeues."""
    import submitit

    from vidpool.cli import submit as tool
    from vidpool.config import load_cfg

    submitted, made = [], []

    class Executor:  # stands in for SLURM: records what would run
        def __init__(self, folder, cluster=None, **kw):
            made.append(kw)

        def update_parameters(self, **kw):
            pass

        def submit(self, job):
            submitted.append(job)
            return type("Job", (), {"job_id": "1"})()

    monkeypatch.setattr(submitit, "AutoExecutor", Executor)
    yaml = tmp_path / "exp.yaml"
    yaml.write_text("SOLVER:\n  WEIGHT_DECAY: 0.0003\n")
    out = tmp_path / "run"
    assert tool.main(["--cfg", str(yaml), "--local", "--gpus-per-node", "0", *TINY, "DATA.PATH_TO_DATA_DIR",
                      os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(out)]) == 0
    yaml.write_text("SOLVER:\n  WEIGHT_DECAY: 0.5\n")  # edited while the job runs
    requeued = submitted[0].checkpoint()
    cfg = requeued.function.config()
    assert cfg.SOLVER.WEIGHT_DECAY == 0.0003 and cfg.MODEL.BASE_WIDTH == 8 and cfg.OUTPUT_DIR == str(out)
    assert load_cfg(str(out / "submitted_config.yaml")).SOLVER.WEIGHT_DECAY == 0.0003
    # on SLURM the job requeues after time limits until the run is done (submitit's default stops at 3)
    assert tool.main(["--cfg", str(yaml), "--gpus-per-node", "0", *TINY, "DATA.PATH_TO_DATA_DIR",
                      os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(out)]) == 0
    assert made[-1] == {"slurm_max_num_timeout": 1000}
