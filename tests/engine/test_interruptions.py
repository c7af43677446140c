"""Interruptions lose at most minutes: a kill -9 or a SIGTERM in the middle of an epoch (loader
workers on, and under torchrun) resumes to exactly the weights and stats of an uninterrupted run;
checkpoint retention, stale temporary files, fine-tuning resumes, checkpoints of another model."""
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from vidpool.engine import checkpoint as ckpt
from vidpool.engine import test as run_test
from vidpool.engine import train
from vidpool.engine.resume import PREEMPTED_EXIT_CODE

from ..data.test_workers import child_processes
from .test_observed import watch_training_model
from .test_train import ROOT, TINY, _free_port, _stats, tiny_cfg

# 26 training clips in batches of 2: 13 steps per epoch, a checkpoint every 4 steps; dropout on
RUN = ["SOLVER.MAX_EPOCH", "3", "SOLVER.STEPS", "[0, 2]", "TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False",
       "MODEL.DROPOUT_RATE", "0.5", "TRAIN.BATCH_SIZE", "2", "TRAIN.CHECKPOINT_ITERS", "4",
       "DATA_LOADER.NUM_WORKERS", "2", "LOG_PERIOD", "5"]


def _command(root, out, torchrun=False):
    head = [sys.executable]
    if torchrun:
        head += ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    return head + [os.path.join(ROOT, "tools", "train_net.py")] + TINY + [
        "DATA.PATH_TO_DATA_DIR", os.path.join(root, "ucf101"), "OUTPUT_DIR", str(out)] + RUN + \
        (["TRAIN.BATCH_SIZE", "4"] if torchrun else [])


def _tree(pid):
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += child_processes(p)
    return out


def _abort_with_stacks(proc, what: str) -> None:
    """Fail the test for a run that hangs, with the Python stack of every thread of every process of
    it (faulthandler, on SIGABRT; start the run with _popen) instead of running into pytest's
    timeout, which shows only this one."""
    tree = _tree(proc.pid)
    listing = subprocess.run(["ps", "-o", "pid,ppid,stat,etimes,pcpu,args", "-p", ",".join(map(str, tree))],
                             capture_output=True, text=True).stdout
    for pid in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGABRT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in tree:  # torchrun starts each rank in a session of its own: not the run's group alone
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate()
    if err is None:  # stderr went into stdout: the stacks are at its end
        pytest.fail(f"{what}:\n{listing}\noutput and stacks:\n{(out or '')[-36000:]}")
    pytest.fail(f"{what}:\n{listing}\noutput:\n{(out or '')[-6000:]}\nstderr (stacks):\n{err[-30000:]}")


def _popen(command, merged=False, env=None):
    """The run in a new process group, its output captured, faulthandler on (see _abort_with_stacks);
    ``merged``: stderr into stdout (the stacks too); ``env``: the environment (default: this one)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                            text=True, start_new_session=True, env=dict(env or os.environ, PYTHONFAULTHANDLER="1"))


def _finished(command, seconds=420):
    """``subprocess.run(command, capture_output=True, text=True)`` with a deadline (a run takes under
    a minute); a run that hangs fails with every process's stacks."""
    proc = _popen(command)
    try:
        stdout, stderr = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        _abort_with_stacks(proc, f"{' '.join(command[:6])} ... still running after {seconds} s")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _wait_for(path, proc, seconds=180):
    """Wait until ``path`` exists; a run that ends first fails with its output, one that hangs with
    every process's stacks."""
    deadline = time.time() + seconds
    while not os.path.exists(path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if os.path.exists(path):
        return
    if proc.poll() is not None:
        out = proc.stdout.read() if proc.stdout else ""
        pytest.fail(f"{path} never appeared: the run exited {proc.returncode}:\n{(out or '')[-6000:]}")
    _abort_with_stacks(proc, f"{path} did not appear in {seconds} s")


def _assert_same_run(a, b):
    """The final weights, optimizer state and every epoch record's numbers of two runs."""
    x, y = (ckpt.load_checkpoint(ckpt.checkpoint_path(str(o), 3)) for o in (a, b))
    for k in x["model"]:
        assert torch.equal(x["model"][k], y["model"][k]), k
    sx, sy = x["optimizer"]["state"], y["optimizer"]["state"]
    assert all(torch.equal(sx[i]["momentum_buffer"], sy[i]["momentum_buffer"]) for i in sx)
    keys = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "skipped_videos")
    assert [{k: s.get(k) for k in keys} for s in _stats(a)] == [{k: s.get(k) for k in keys} for s in _stats(b)]
    assert [s["epoch"] for s in _stats(b)] == [1, 2, 3]  # no epoch twice after the resume
    # iteration records (every 5 of 13 steps per epoch, and the last), none twice, the same numbers
    its = [(r["epoch"], r["iteration"], r["step"], r["loss"], r["lr"]) for r in _stats(b, "iteration")]
    assert its == [(r["epoch"], r["iteration"], r["step"], r["loss"], r["lr"]) for r in _stats(a, "iteration")]


@pytest.fixture(scope="module")
def uninterrupted(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    done = _finished(_command(synthetic_root, out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_kill_9_in_the_middle_of_an_epoch(synthetic_root, tmp_path, uninterrupted):
    proc = _popen(_command(synthetic_root, tmp_path), merged=True)
    _wait_for(ckpt.checkpoint_path(str(tmp_path), 1, 8), proc)  # 8 steps into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(ckpt.checkpoint_path(str(tmp_path), 2))
    done = _finished(_command(synthetic_root, tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resumed from" in done.stdout and "iterations done" in done.stdout
    _assert_same_run(uninterrupted, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["the training process", "every process of the job"])
def test_sigterm_in_the_middle_of_an_epoch(synthetic_root, tmp_path, uninterrupted, to):
    """SIGTERM to the training process, or to its whole process group as SLURM's scancel and time
    limit deliver it (the loader workers get one too): a checkpoint, exit 75, and a resume to the
    uninterrupted run's weights."""
    proc = _popen(_command(synthetic_root, tmp_path), merged=True)
    _wait_for(ckpt.checkpoint_path(str(tmp_path), 1, 4), proc)
    if to == "the training process":
        proc.send_signal(signal.SIGTERM)
    else:
        assert len(child_processes(proc.pid)) >= 2  # the group holds the persistent loader workers
        os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT_CODE, output[-3000:]
    newest = ckpt.list_checkpoints(str(tmp_path))[-1]
    done_epochs, steps = ckpt.progress_of(newest)
    assert done_epochs == 1 and 4 <= steps < 13 and "preempted" in output
    assert ckpt.load_checkpoint(newest)["iteration"] == steps
    done = _finished(_command(synthetic_root, tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _assert_same_run(uninterrupted, tmp_path)


@pytest.fixture(scope="module")
def uninterrupted_ddp(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted_ddp")
    done = _finished(_command(synthetic_root, out, torchrun=True))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGUSR1 to rank 1", "SIGTERM to rank 1", "SIGTERM to every process of the job",
                                 "kill -9 of every process"])
def test_interrupted_torchrun_run(synthetic_root, tmp_path, uninterrupted_ddp, how):
    """A signal that reaches one rank, or every process (torchrun, both ranks and their loader
    workers, as SLURM's scancel and time limit send it), stops both ranks after the same step with
    one checkpoint holding both ranks' RNG states; a kill -9 of everything falls back to the last
    mid-epoch checkpoint. Either way the resumed 2-process run ends as an uninterrupted one."""
    out = tmp_path / "stopped"
    proc = _popen(_command(synthetic_root, out, torchrun=True), merged=True)
    _wait_for(ckpt.checkpoint_path(str(out), 1, 4), proc)  # 6 steps per epoch per process at batch 2 each
    ranks = {}
    for pid in child_processes(proc.pid):
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        ranks[int(env[b"RANK"])] = int(pid)
    if how.startswith("kill"):
        for pid in list(ranks.values()) + [proc.pid]:
            os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    else:
        if "every process" in how:
            assert all(len(child_processes(pid)) >= 2 for pid in ranks.values())
            os.killpg(proc.pid, signal.SIGTERM)  # torchrun exits 1 then: its agent re-raises the signal
        else:
            os.kill(ranks[1], signal.SIGUSR1 if "USR1" in how else signal.SIGTERM)
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode != 0 and output.count("preempted") == 2, output[-3000:]
        newest = ckpt.load_checkpoint(ckpt.list_checkpoints(str(out))[-1])
        # at or after the step the signal was sent (a loaded machine may notice the file a few steps late)
        assert (newest["epoch"], newest.get("iteration", 0)) >= (1, 4) and len(newest["rng_per_rank"]) == 2
        assert not torch.equal(newest["rng_per_rank"][0]["torch"], newest["rng_per_rank"][1]["torch"])
    done = _finished(_command(synthetic_root, out, torchrun=True))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _assert_same_run(uninterrupted_ddp, out)


def test_retention_ordering_and_stale_temporaries(tmp_path):
    out = str(tmp_path)
    for epoch, it in [(1, 0), (1, 5), (2, 0), (3, 0), (3, 4), (4, 0), (5, 0), (5, 7)]:
        ckpt.save_checkpoint(ckpt.checkpoint_path(out, epoch, it), {"model": {}, "epoch": epoch, "iteration": it})
    assert [ckpt.progress_of(p) for p in ckpt.list_checkpoints(out)] == [
        (1, 0), (1, 5), (2, 0), (3, 0), (3, 4), (4, 0), (5, 0), (5, 7)]
    assert os.path.basename(ckpt.checkpoint_path(out, 5, 7)) == "checkpoint_epoch_00006_iter_000007.pyth"
    ckpt.prune_checkpoints(out, keep_last=2, keep_period=2)
    # newest (5 + 7 steps), the last two epoch ends (4, 5) and the even epochs (2, 4)
    assert [ckpt.progress_of(p) for p in ckpt.list_checkpoints(out)] == [(2, 0), (4, 0), (5, 0), (5, 7)]
    ckpt.prune_checkpoints(out, keep_last=0, keep_period=0)  # all epoch ends; only the newest mid-epoch one
    assert len(ckpt.list_checkpoints(out)) == 4
    stale = ckpt.checkpoint_path(out, 6) + ".tmp4242"
    open(stale, "wb").write(b"half")
    assert ckpt.remove_stale_temporaries(out) == 1 and not os.path.exists(stale)


def test_finetuning_resumes_without_its_source_and_checkpoints_name_their_model(synthetic_root, tmp_path):
    quiet = ["TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0"]
    train(tiny_cfg(synthetic_root, tmp_path / "src", *quiet, "SOLVER.MAX_EPOCH", "1"))
    source = ckpt.checkpoint_path(str(tmp_path / "src"), 1)
    ft = ["TRAIN.FINETUNE", "True", "TRAIN.CHECKPOINT_FILE_PATH", source, "SOLVER.STEPS", "[0]", "SOLVER.LRS", "[1]"]
    train(tiny_cfg(synthetic_root, tmp_path / "ft", *quiet, *ft, "SOLVER.MAX_EPOCH", "1"))
    os.remove(source)  # cleaned up, moved, or on a disk that is gone
    stats = train(tiny_cfg(synthetic_root, tmp_path / "ft", *quiet, *ft, "SOLVER.MAX_EPOCH", "2"))
    assert stats["epoch"] == 2
    # a SoftPool checkpoint tested, resumed or fine-tuned as another model
    mine = ckpt.checkpoint_path(str(tmp_path / "ft"), 2)
    with pytest.raises(ValueError, match="MODEL.POOL 'softpool' in the checkpoint, 'max' in this config"):
        run_test(tiny_cfg(synthetic_root, tmp_path / "t", "TEST.CHECKPOINT_FILE_PATH", mine, "MODEL.POOL", "max"))
    with pytest.raises(ValueError, match="MODEL.ARCH 'r3d_10' in the checkpoint, 'r2plus1d_10' in this config"):
        train(tiny_cfg(synthetic_root, tmp_path / "ft", *quiet, *ft, "SOLVER.MAX_EPOCH", "3", "MODEL.ARCH",
                       "r2plus1d_10"))
    with pytest.raises(ValueError, match="MODEL.NUM_CLASSES 5 in the checkpoint, 7 in this config"):
        run_test(tiny_cfg(synthetic_root, tmp_path / "t", "TEST.CHECKPOINT_FILE_PATH", mine, "MODEL.NUM_CLASSES", "7"))


def test_a_gpu_run_without_cuda_kernels_is_never_silent(monkeypatch):
    """Checked with a CUDA device object (no GPU needed): the extension reports no CUDA kernels."""
    import logging

    from vidpool import ops
    from vidpool.config import load_cfg
    from vidpool.engine.distributed import check_softpool_backend

    monkeypatch.setattr(ops, "backend", lambda device: "reference" if torch.device(device).type == "cuda" else "cpp")
    cuda = torch.device("cuda", 0)
    with pytest.raises(RuntimeError, match="no CUDA kernels.*pip install --no-build-isolation"):
        check_softpool_backend(load_cfg(None, ["DEVICE", "cuda", "MODEL.POOL", "softpool"]), cuda)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("vidpool.engine")
    logger.addHandler(handler)  # the run logger does not propagate to pytest's
    try:
        check_softpool_backend(load_cfg(None, ["DEVICE", "auto", "MODEL.HEAD_POOL", "softpool"]), cuda)
    finally:
        logger.removeHandler(handler)
    assert any("slow pure-PyTorch SoftPool" in r.getMessage() and r.levelno == logging.WARNING for r in records)
    check_softpool_backend(load_cfg(None, ["DEVICE", "cuda", "MODEL.POOL", "max"]), cuda)  # no SoftPool: fine
    check_softpool_backend(load_cfg(None, ["DEVICE", "cpu", "MODEL.POOL", "softpool"]), torch.device("cpu"))


def test_sync_bn_settings_that_cannot_work_are_errors(monkeypatch):
    from vidpool.config import load_cfg
    from vidpool.engine import distributed
    from vidpool.engine.trainer import build_training_model

    cfg = load_cfg(None, ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "4", "MODEL.NUM_CLASSES", "3",
                          "MODEL.SYNC_BN", "True"])
    assert build_training_model(cfg, torch.device("cpu")) is not None  # one process: nothing to synchronise
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="MODEL.SYNC_BN needs GPUs"):
        build_training_model(cfg, torch.device("cpu"))
    with pytest.raises(ValueError, match="MODEL.SYNC_BN and multigrid do not combine"):
        build_training_model(load_cfg(None, ["MODEL.ARCH", "r3d_10", "MODEL.BASE_WIDTH", "4", "MODEL.SYNC_BN", "True",
                                             "MULTIGRID.SHORT_CYCLE", "True"]), torch.device("cpu"))


def test_resume_repairs_a_stats_line_cut_by_the_kill(tmp_path):
    """A kill in the middle of a stats.jsonl write leaves a partial last line. The resumed run's
    repair drops it (with the epochs and iterations it trains again), where it used to fail on it;
    the tolerant reader skips it, the strict one (plots) names the line."""
    import json

    from vidpool.engine.resume import repair_outputs
    from vidpool.engine.run_log import read_stats

    rows = [{"epoch": 1, "train_loss": 2.0, "lr": 0.1}, {"kind": "iteration", "step": 10, "loss": 2.1},
            {"epoch": 2, "train_loss": 1.5, "lr": 0.1}, {"kind": "iteration", "step": 30, "loss": 1.2}]
    path = tmp_path / "stats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "train_lo')
    assert read_stats(str(tmp_path)) == rows
    assert read_stats(str(path), "epoch") == [rows[0], rows[2]]
    assert read_stats(str(tmp_path), "iteration") == [rows[1], rows[3]]
    with pytest.raises(ValueError, match=r"stats.jsonl:5: not JSON"):
        read_stats(str(path), strict=True)
    repair_outputs(str(tmp_path), 2, None, 20)  # resuming after epoch 2, iteration 20 of the run
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:3]
    # nothing to repair: the file is left as it is (same bytes, same modification time)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    repair_outputs(str(tmp_path), 2, None, 20)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


@pytest.mark.parametrize("during", ["precise BN", "validation"])
def test_a_stop_during_precise_bn_or_validation_checkpoints_after_the_current_batch(synthetic_root, tmp_path,
                                                                                   monkeypatch, during):
    """SIGUSR1 in the middle of precise BN or validation: no batch of that pass starts after it, the
    checkpoint holds the epoch's finished steps (the model as training left it: precise BN's partial
    statistics undone), and the resumed run ends with the weights, statistics and records of an
    uninterrupted one."""
    from vidpool.engine import resume

    run = ["TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False", "TRAIN.PRECISE_BN", "True",
           "TRAIN.PRECISE_BN_BATCHES", "3", "MODEL.DROPOUT_RATE", "0.5", "TRAIN.BATCH_SIZE", "2", "LOG_PERIOD", "0"]
    reference = train(tiny_cfg(synthetic_root, tmp_path / "reference", *run))

    seen = {"calls": 0, "after": 0, "signalled": False}

    def phase(model):
        if not model.training:
            return "validation"
        return "training" if torch.is_grad_enabled() else "precise BN"

    def hook(module, inputs):
        if phase(module) != during:
            return
        if seen["signalled"]:
            seen["after"] += 1
        seen["calls"] += 1
        if seen["calls"] == 2:  # the second batch of the pass: the first one changed the statistics
            seen["signalled"] = True
            os.kill(os.getpid(), signal.SIGUSR1)

    watch_training_model(monkeypatch, hook)
    cfg = tiny_cfg(synthetic_root, tmp_path / "stopped", *run)
    with pytest.raises(resume.Preempted) as stopped:
        train(cfg)
    assert seen["signalled"] and seen["after"] == 0, seen
    steps = 13  # 26 training clips in batches of 2
    assert stopped.value.signum == signal.SIGUSR1
    assert stopped.value.path == ckpt.checkpoint_path(str(tmp_path / "stopped"), 0, steps)
    assert ckpt.list_checkpoints(str(tmp_path / "stopped")) == [stopped.value.path]
    monkeypatch.undo()
    resumed = train(cfg)
    for key in ("train_loss", "train_top1", "val_loss", "val_top1", "lr"):
        assert resumed[key] == reference[key], key
    a, b = (ckpt.load_checkpoint(ckpt.checkpoint_path(str(tmp_path / d), 2)) for d in ("reference", "stopped"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [s["val_top1"] for s in _stats(tmp_path / "reference")] == [s["val_top1"] for s in _stats(tmp_path / "stopped")]


def test_a_stop_during_testing_ends_it_after_the_current_batch(synthetic_root, tmp_path, monkeypatch, capsys):
    """`vidpool test` and SIGTERM: no batch starts after it, nothing is written as if testing had
    finished, exit status 75; started again, it tests everything."""
    from vidpool.cli import test as test_command
    from vidpool.engine import tester

    quiet = ["TENSORBOARD.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0", "SOLVER.MAX_EPOCH", "1", "TEST.BATCH_SIZE", "2"]
    train(tiny_cfg(synthetic_root, tmp_path, *quiet, "TEST.ENABLE", "False"))
    build, seen = tester.build_model, {"calls": 0}

    def watched(cfg):
        model = build(cfg)

        def hook(module, inputs):
            seen["calls"] += 1
            if seen["calls"] == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(tester, "build_model", watched)
    argv = [*TINY, "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "OUTPUT_DIR", str(tmp_path),
            *quiet]  # no YAML: the defaults and the overrides
    assert test_command.main(argv) == PREEMPTED_EXIT_CODE
    assert seen["calls"] == 2 and "testing stopped by SIGTERM" in capsys.readouterr().out
    assert not (tmp_path / "predictions.csv").exists()
    monkeypatch.setattr(tester, "build_model", build)
    assert test_command.main(argv) == 0
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 14  # header + every test video of the synthetic UCF-101 split


def _resume_choice(rank, port, out, result, failures):
    """One process of a 2-process gloo group: the checkpoint it resumes from. Rank 1's first
    ``failures`` reads of the newest file fail as a lagging network file system's view does."""
    import torch.distributed as torch_dist

    from vidpool.engine import resume

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch_dist.init_process_group("gloo")
    ckpt.READ_DELAY_S = 0.01
    newest, load, seen = ckpt.checkpoint_path(out, 2, 5), torch.load, {"n": 0}

    def lagging(path, *args, **kwargs):
        if rank == 1 and str(path) == newest and seen["n"] < failures:
            seen["n"] += 1
            raise RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory")
        return load(path, *args, **kwargs)

    torch.load = lagging
    try:
        state = resume.agreed_checkpoint(out, set_aside=True)
        outcome = {"path": state["path"], "epoch": state["epoch"], "iteration": state["iteration"]}
    except RuntimeError as e:
        outcome = {"error": str(e)}
    torch.save({**outcome, "reads_failed": seen["n"]}, f"{result}.{rank}")
    torch_dist.destroy_process_group()


@pytest.mark.parametrize("failures", [2, 99])
def test_every_rank_resumes_from_the_checkpoint_rank_0_chose(tmp_path, failures):
    """Rank 1 reads the newest checkpoint as damaged twice (or always): it reads it again until it
    loads, never falling back on its own to the older file that it could read; when it never loads,
    the run stops with a message that names the file and the rank."""
    import torch.multiprocessing as mp

    out = str(tmp_path)
    for epoch, it in [(2, 0), (2, 5)]:
        ckpt.save_checkpoint(ckpt.checkpoint_path(out, epoch, it), {"model": {}, "epoch": epoch, "iteration": it})
    result = str(tmp_path / "result")
    mp.start_processes(_resume_choice, args=(_free_port(), out, result, failures), nprocs=2, start_method="spawn")
    zero, one = torch.load(f"{result}.0"), torch.load(f"{result}.1")
    assert zero["path"] == ckpt.checkpoint_path(out, 2, 5) and (zero["epoch"], zero["iteration"]) == (2, 5)
    if failures == 2:
        assert one == {**zero, "reads_failed": 2}
    else:
        assert one["reads_failed"] == ckpt.READ_ATTEMPTS and "rank 1 cannot read" in one["error"]
        assert ckpt.checkpoint_path(out, 2, 5) in one["error"] and "shared by all nodes" in one["error"]
    assert len(ckpt.list_checkpoints(out)) == 2  # nothing set aside: the file is good


def test_a_damaged_newest_checkpoint_is_set_aside_and_never_outlives_the_good_ones(synthetic_root, tmp_path,
                                                                                   monkeypatch):
    """A damaged file named as newer than everything (epoch 2, step 8): the resume sets it aside and
    takes the last good one; the checkpoint written when the run is stopped at step 6 of epoch 2 is
    kept, so the next resume continues from it (before: pruning kept the damaged "newest" file and
    deleted the good one)."""
    from vidpool.engine import resume

    run = ["TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False", "TRAIN.EVAL_PERIOD", "0", "TRAIN.BATCH_SIZE", "2",
           "TRAIN.CHECKPOINT_ITERS", "4", "TRAIN.KEEP_CHECKPOINTS", "1"]
    train(tiny_cfg(synthetic_root, tmp_path, *run, "SOLVER.MAX_EPOCH", "1"))
    damaged = ckpt.checkpoint_path(str(tmp_path), 1, 8)
    open(damaged, "wb").write(b"<html>502 Bad Gateway</html>")
    steps = {"n": 0}

    def hook(module, inputs):
        steps["n"] += module.training and torch.is_grad_enabled()
        if steps["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    watch_training_model(monkeypatch, hook)
    with pytest.raises(resume.Preempted) as stopped:
        train(tiny_cfg(synthetic_root, tmp_path, *run, "SOLVER.MAX_EPOCH", "2"))
    assert stopped.value.path == ckpt.checkpoint_path(str(tmp_path), 1, 6)
    assert os.path.isfile(damaged + ".damaged") and not os.path.exists(damaged)
    assert ckpt.list_checkpoints(str(tmp_path))[-1] == stopped.value.path
    monkeypatch.undo()
    train(tiny_cfg(synthetic_root, tmp_path, *run, "SOLVER.MAX_EPOCH", "2"))
    assert "resumed from " + stopped.value.path in (tmp_path / "log.txt").read_text()


def _sbatch_environment(tmp_path):
    """tools/slurm_torchrun.sbatch outside SLURM: `srun` runs its command on this machine, `scontrol`
    names this host and records a requeue in a file; torchrun is the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "scontrol").write_text('#!/bin/sh\nif [ "$1" = show ]; then echo 127.0.0.1; '
                                      'else echo "$@" >> "$REQUEUES"; fi\n')
    for tool in ("srun", "scontrol"):
        os.chmod(bin_dir / tool, 0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
               SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="node0", SLURM_JOB_NUM_NODES="1", NPROC_PER_NODE="2",
               MASTER_PORT=str(_free_port()), REQUEUES=str(tmp_path / "requeues.txt"))
    return env


def _group_ends(pgid, seconds=120):
    """Whether every process of the group has ended within ``seconds`` (no orphan trains on)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["time limit", "scancel"])
def test_the_slurm_torchrun_script_stops_after_a_checkpoint_and_requeues_only_at_the_time_limit(
        synthetic_root, tmp_path, uninterrupted_ddp, how):
    """The documented sbatch script with a real torchrun (2 processes, loader workers). The time
    limit's warning (SIGUSR1 to the batch script alone, --signal=B:) reaches both training processes
    through srun and torchrun: one checkpoint, every process ends, the job is requeued, and the
    requeued job ends as an uninterrupted run. scancel (SIGTERM to every process of the job): a
    checkpoint, every process ends, no requeue."""
    out = tmp_path / "run"
    script = [os.path.join(ROOT, "tools", "slurm_torchrun.sbatch")]
    command = _command(synthetic_root, out, torchrun=True)
    args = command[command.index(os.path.join(ROOT, "tools", "train_net.py")) + 1:]  # the overrides
    env = _sbatch_environment(tmp_path)
    proc = _popen(["bash", *script, *args], merged=True, env=env)
    _wait_for(ckpt.checkpoint_path(str(out), 1, 4), proc)
    if how == "time limit":
        proc.send_signal(signal.SIGUSR1)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=180)
    assert _group_ends(proc.pid), "processes of the job outlived it"
    newest = ckpt.load_checkpoint(ckpt.list_checkpoints(str(out))[-1])
    assert (newest["epoch"], newest.get("iteration", 0)) >= (1, 4) and len(newest["rng_per_rank"]) == 2
    assert ckpt.progress_of(ckpt.list_checkpoints(str(out))[-1]) < (3, 0)  # stopped, not finished
    requeues = tmp_path / "requeues.txt"
    if how == "scancel":
        assert not requeues.exists()
        return
    assert proc.returncode == 0 and requeues.read_text() == "requeue 4242\n", output[-3000:]
    env["MASTER_PORT"] = str(_free_port())
    done = subprocess.run(["bash", *script, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert requeues.read_text() == "requeue 4242\n"  # a finished run is not requeued
    _assert_same_run(uninterrupted_ddp, out)


SLOW_SAVE = """
import os, sys, time
from vidpool.cli import main
from vidpool.engine import checkpoint as ckpt

save = ckpt.save_checkpoint


def slow_save(path, state):  # rank 0 writes slowly once the test has sent its signal
    if os.environ["RANK"] == "0" and os.path.exists(os.environ["SLOW_SAVE_AFTER"]):
        time.sleep(33)
    save(path, state)


ckpt.save_checkpoint = slow_save
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_no_rank_exits_while_rank_0_is_still_writing_the_stop_checkpoint(synthetic_root, tmp_path):
    """When one process exits, torchrun sends SIGTERM to the others and kills them 30 s later (not
    configurable on that path). With a write that takes 33 s, every rank waits for rank 0's write,
    so the checkpoint of the stop is complete and both ranks reach the end of the stop."""
    out = tmp_path / "run"
    script = tmp_path / "slow_save_train.py"
    script.write_text(SLOW_SAVE)
    command = _command(synthetic_root, out, torchrun=True)
    at = command.index(os.path.join(ROOT, "tools", "train_net.py"))
    command = command[:at] + [str(script)] + command[at + 1:]
    marker = tmp_path / "signalled"
    proc = _popen(command, merged=True, env=dict(os.environ, SLOW_SAVE_AFTER=str(marker)))
    _wait_for(ckpt.checkpoint_path(str(out), 1, 4), proc)
    ranks = {}
    for pid in child_processes(proc.pid):
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        ranks[int(env[b"RANK"])] = int(pid)
    marker.write_text("")
    os.kill(ranks[1], signal.SIGUSR1)
    output, _ = proc.communicate(timeout=180)
    assert output.count("preempted") == 2, output[-3000:]  # both ranks reached the end of the stop
    newest = ckpt.list_checkpoints(str(out))[-1]
    assert ckpt.progress_of(newest) > (1, 4), output[-3000:]
    assert len(ckpt.load_checkpoint(newest)["rng_per_rank"]) == 2
