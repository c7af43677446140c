"""Submit a training (then test) run to SLURM with submitit: one task per GPU, the distributed
environment taken from SLURM's variables, and requeued on preemption or time limit, resuming from the
run's newest checkpoint.

    vidpool submit --cfg configs/hacs/r3d50_softpool.yaml --nodes 2 --gpus-per-node 8 \\
        --partition gpu --time 4320 [KEY VALUE ...]
    vidpool submit --cfg configs/demo/r3d10_softpool.yaml --local --gpus-per-node 0 --tasks 2

SLURM sends SIGUSR1 --signal-delay seconds before the time limit (and on preemption); every task then
finishes its step, the run writes a checkpoint (vidpool's own SIGUSR1 handling) and rank 0 requeues
the job, which resumes exactly there. `scancel` (SIGTERM) also stops the job after a checkpoint,
but ends it: it is not requeued (start it again with the same command to resume). Set
TRAIN.CHECKPOINT_ITERS as well so a hard kill loses only minutes. --local runs the same job with submitit's local executor (tests, a workstation). Job logs
go to --job-dir (default OUTPUT_DIR/slurm). The config as submitted (YAML plus overrides) is written
to OUTPUT_DIR/submitted_config.yaml and travels with the job: a requeued job resumes with it, even
if the YAML file was edited since.
"""
import os
import signal

# the signal submitit asks SLURM for and hands to the job's checkpoint/requeue handler; it must be
# set before submitit is imported (the job process inherits it)
os.environ.setdefault("SUBMITIT_PREEMPT_SIGNAL", "USR1")

from vidpool.cli._args import parse_with_config, parser
from vidpool.config import load_cfg  # noqa: E402


class TrainJob:
    """The job submitit pickles: train (and test) as the config says, in every task."""

    def __init__(self, cfg_path, overrides, cfg_text=None):
        self.cfg_path, self.overrides, self.cfg_text = cfg_path, list(overrides), cfg_text

    def config(self):
        """The config as it was at submission (a requeued job does not read the YAML again: edits to it
        after submitting do not change a running experiment)."""
        from vidpool.config import load_cfg_string

        return load_cfg_string(self.cfg_text) if self.cfg_text else load_cfg(self.cfg_path, self.overrides)

    def __call__(self):
        import submitit

        from vidpool.engine import distributed, test, train
        from vidpool.engine.resume import Preempted

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        cfg = self.config()
        try:
            if cfg.TRAIN.ENABLE:
                train(cfg)
            return test(cfg) if cfg.TEST.ENABLE else {}
        except Preempted as e:
            print(f"preempted: {e}", flush=True)
            if e.signum != signal.SIGUSR1:
                # SIGTERM: scancel, or a preemption that SLURM requeues itself; the job ends here
                return {"stopped": e.path}
            handler = signal.getsignal(signal.SIGUSR1)
            if callable(handler):  # submitit's: rank 0 calls checkpoint() and requeues the job
                handler(signal.SIGUSR1, None)
            return {"preempted": e.path}
        finally:
            distributed.shutdown()

    def checkpoint(self):
        """What a requeued job runs: the same job; AUTO_RESUME picks up the newest checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.cfg_path, self.overrides, self.cfg_text))


def main(argv=None):
    ap = parser("submit", __doc__, cfg="required")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (one task each)")
    ap.add_argument("--tasks", type=int, help="tasks per node (default: --gpus-per-node, at least 1)")
    ap.add_argument("--cpus-per-task", type=int, default=10, help="CPU cores per task (data loading)")
    ap.add_argument("--partition", help="SLURM partition")
    ap.add_argument("--time", type=int, default=4320, help="time limit per job in minutes (it requeues itself)")
    ap.add_argument("--mem", help="memory per node, e.g. 480G")
    ap.add_argument("--signal-delay", type=int, default=120, help="seconds before the limit that SIGUSR1 arrives")
    ap.add_argument("--name", help="job name (default: the config's file name)")
    ap.add_argument("--job-dir", help="submitit's logs and pickles (default OUTPUT_DIR/slurm)")
    ap.add_argument("--max-requeues", type=int, default=1000,
                    help="requeues after time limits before giving up (default 1000: until the run is done)")
    ap.add_argument("--local", action="store_true", help="run with submitit's local executor instead of SLURM")
    ap.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    args, cfg = parse_with_config(ap, argv)
    from vidpool.config.check import check_cfg

    check_cfg(cfg, train=cfg.TRAIN.ENABLE, test=cfg.TEST.ENABLE)
    import submitit

    tasks = args.tasks or max(1, args.gpus_per_node)
    if args.local and args.nodes != 1:
        ap.error("--local runs on this machine: --nodes 1")
    job_dir = args.job_dir or os.path.join(cfg.OUTPUT_DIR, "slurm")
    # submitit gives up after 3 time-outs by default: a run longer than 4 time limits would stop there
    extra = {} if args.local else {"slurm_max_num_timeout": args.max_requeues}
    executor = submitit.AutoExecutor(folder=job_dir, cluster="local" if args.local else None, **extra)
    params = {"timeout_min": args.time, "tasks_per_node": tasks, "gpus_per_node": args.gpus_per_node,
              "name": args.name or os.path.splitext(os.path.basename(args.cfg))[0]}
    if not args.local:
        params.update(nodes=args.nodes, cpus_per_task=args.cpus_per_task, slurm_signal_delay_s=args.signal_delay)
        if args.partition:
            params["slurm_partition"] = args.partition
        if args.mem:
            params["slurm_mem"] = args.mem
    executor.update_parameters(**params)
    # the config as submitted, kept in the run folder and in the job: every requeue resumes with it
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    snapshot = os.path.join(cfg.OUTPUT_DIR, "submitted_config.yaml")
    with open(snapshot, "w") as f:
        f.write(cfg.dump())
    job = executor.submit(TrainJob(args.cfg, args.overrides, cfg.dump()))
    print(f"submitted job {job.job_id}: {args.nodes} node(s) x {tasks} task(s), output {cfg.OUTPUT_DIR}, "
          f"logs {job_dir}")
    if args.wait:
        print(job.results()[0])
    return 0
