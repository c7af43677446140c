"""Loader workers and SIGTERM (vidpool.data.workers), observed on real worker processes: a SIGTERM to
the whole job leaves the workers loading for the training process that is stopping; a SIGTERM to a
worker alone still kills it; workers left alive at interpreter exit end with it."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

# A process that loads 40 items (20 batches of 2, 0.1 s per item, 2 persistent workers) with a
# vidpool loader's worker_init_fn, inside the training process's stop handler when asked; it prints
# a line after the first batch, then every item it got and how it ended.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import torch
    from torch.utils.data import Dataset
    from vidpool.data import workers
    from vidpool.engine.resume import StopRequests

    class Slow(Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            time.sleep(0.1)
            return i

    if __name__ == "__main__":
        workers.PATIENCE_S = float(sys.argv[1])
        method, at_start = sys.argv[2], sys.argv[3:]
        loader = workers.Loader(Slow(), batch_size=2, num_workers=2, persistent_workers=True,
                                worker_init_fn=workers.worker_init(), multiprocessing_context=method)
        seen = []
        with StopRequests() as stop:
            try:
                batches = iter(loader)
                if at_start:  # the whole job, while the workers are still starting (importing torch)
                    os.killpg(0, getattr(signal, at_start[0]))
                for k, batch in enumerate(batches):
                    seen += batch.tolist()
                    if k == 0:
                        print("loading", flush=True)
            except RuntimeError as e:
                print("error:", e, "| from:", e.__cause__, flush=True)
                sys.exit(3)
        print("signal", stop.signum, "items", sorted(seen) == list(range(40)), flush=True)
""")


def child_processes(pid):
    """The child processes of ``pid`` (a training process's DataLoader workers, torchrun's ranks),
    from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return children


def _start(patience, method="fork", *at_start, script=None):
    """The script above as a file (spawn and forkserver workers import the main module), in its own
    process group."""
    path = os.path.join(script, "loader_script.py") if script else None
    if path:
        with open(path, "w") as f:
            f.write(SCRIPT)
    command = [path] if path else ["-c", SCRIPT]
    proc = subprocess.Popen([sys.executable, *command, str(patience), method, *at_start], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not at_start:
        assert proc.stdout.readline().strip() == "loading"
    return proc


def _finish(proc):
    """The process's output once it has ended; a process that hangs fails the test and is killed
    with its workers (its own process group)."""
    try:
        return proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise


def test_sigterm_to_the_whole_job_leaves_the_workers_loading_for_the_stopping_process():
    proc = _start(patience=30)
    workers = child_processes(proc.pid)
    assert len(workers) == 2
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM's scancel or time limit: every process of the job
    output = _finish(proc)
    assert proc.returncode == 0, output
    # the training process took the signal, and every item still arrived
    assert output.strip().splitlines()[-1] == f"signal {int(signal.SIGTERM)} items True", output


def test_sigusr1_to_the_whole_job_is_left_to_the_training_process():
    proc = _start(patience=30)
    os.killpg(proc.pid, signal.SIGUSR1)
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert output.strip().splitlines()[-1] == f"signal {int(signal.SIGUSR1)} items True", output


def test_sigterm_to_a_worker_alone_still_kills_it():
    proc = _start(patience=0.5)
    worker = child_processes(proc.pid)[0]
    os.kill(worker, signal.SIGTERM)  # the training process got nothing: not a stop of the job
    output = _finish(proc)
    assert proc.returncode == 3, output
    # torch's report of the signal (raised in the main thread, or chained to "exited unexpectedly")
    assert f"DataLoader worker (pid {worker}) is killed by signal: Terminated" in output, output


def test_workers_alive_at_interpreter_exit_end_with_it():
    """multiprocessing's exit handler sends SIGTERM to the workers still alive and waits for them;
    a worker that kept loading after it would hang the exit forever (pytest, the CLI)."""
    script = textwrap.dedent("""
        import torch
        from torch.utils.data import DataLoader
        from vidpool.data import workers
        workers.PATIENCE_S = 3600  # only the exit handler's own SIGTERM can end them in time
        loader = DataLoader(list(range(8)), batch_size=2, num_workers=2, persistent_workers=True,
                            worker_init_fn=workers.worker_init())
        batches = iter(loader)  # alive until the interpreter exits, workers and all
        print(next(batches).tolist(), flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "[0, 1]"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_workers_are_protected_from_their_first_instruction(tmp_path, method, name):
    """The job's signal while the workers are still starting (a spawned worker is importing torch):
    they live, load every item for the training process, and it takes the signal."""
    proc = _start(30, method, name, script=str(tmp_path))
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert output.strip().splitlines()[-1] == f"signal {int(getattr(signal, name))} items True", output


def test_training_with_spawned_or_forkserver_workers_matches_forked_ones(synthetic_root, tmp_path):
    """DATA_LOADER.START_METHOD: the dataset, its worker_init_fn and the shared stop state travel to
    spawned workers, and a sample's augmentation does not depend on how its worker started."""
    from vidpool.engine import train

    from ..engine.test_train import tiny_cfg

    run = ["DATA_LOADER.NUM_WORKERS", "2", "SOLVER.MAX_EPOCH", "1", "TEST.ENABLE", "False",
           "TENSORBOARD.ENABLE", "False", "MODEL.DROPOUT_RATE", "0.5"]
    stats = {method: train(tiny_cfg(synthetic_root, tmp_path / method, *run, "DATA_LOADER.START_METHOD", method))
             for method in ("fork", "spawn", "forkserver")}
    assert stats["spawn"]["train_loss"] == stats["fork"]["train_loss"] == stats["forkserver"]["train_loss"]
    assert stats["spawn"]["val_loss"] == stats["fork"]["val_loss"]
