"""The ``vidpool`` command (also ``python -m vidpool``): one subcommand per thing a user does.

Exit status: 0 done, 1 the work failed, 2 the user's input is wrong (one message naming the key or
file, no traceback; ``--debug`` or ``VIDPOOL_DEBUG=1`` shows the traceback)."""
from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Optional, Sequence

# subcommand: (module in vidpool.cli, one line for the list)
COMMANDS = {
    "train": ("train", "train (and then test) a model as a config describes"),
    "test": ("test", "multi-view test of a checkpoint: top-1/top-5, predictions.csv"),
    "predict": ("predict", "classify video files with a trained model"),
    "export": ("export", "write a model as ONNX, TorchScript or torch.export and check it"),
    "convert": ("convert", "convert a checkpoint of another toolkit into a vidpool checkpoint"),
    "check-data": ("check_data", "pre-flight check of a data set: every video opened and decoded"),
    "cache-frames": ("cache_frames", "decode every video once into DATA.FRAME_CACHE"),
    "info": ("info", "parameters, GFLOPs and step time of the configured model (or of named models)"),
    "experiments": ("experiments", "run an ablation grid and write its results"),
    "submit": ("submit", "submit a training run to SLURM (requeued on time-outs)"),
    "visualize": ("visualize", "pictures: pooled videos, saliency, training curves"),
    "compare": ("compare", "is method A better than B? seed-level statistics over runs (predictions.csv)"),
    "similarity": ("similarity", "how much of an image or video each pooling method keeps (SSIM, PSNR)"),
    "gate-rates": ("gate_rates", "how often each SRTG gate lets its recalibration through"),
}
USER_ERRORS = ("ConfigError", "UntrustedCheckpointError", "FileNotFoundError", "NotACheckpointError")


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items())
    return ("usage: vidpool [--debug] COMMAND [options] [KEY VALUE ...]\n\n"
            "Video action recognition with spatio-temporal SoftPool.\n\ncommands:\n" + rows +
            "\n\n`vidpool COMMAND --help` describes one. Configs: --cfg FILE, then KEY VALUE overrides;\n"
            "a checkpoint is --weights; outputs --out. Docs: docs/README.md.\n")


def is_user_error(error: BaseException) -> bool:
    return any(t.__name__ in USER_ERRORS for t in type(error).__mro__)


def report_user_error(command: str, error: BaseException) -> None:
    """The one message a user's mistake gets, on stderr and in the run's log when it has one."""
    text = str(error).strip().strip("\"'") if not isinstance(error, FileNotFoundError) or not error.filename \
        else f"no such file or folder: {error.filename}"
    print(f"vidpool {command}: error: {text}", file=sys.stderr, flush=True)
    from vidpool.cli import _args

    line = f"[{time.strftime('%H:%M:%S')}] ERROR vidpool {command}: {text}\n"
    files = [h for h in logging.getLogger("vidpool").handlers if isinstance(h, logging.FileHandler)]
    for handler in files:
        handler.stream.write(line)
        handler.flush()
    if not files and _args.OUTPUT_DIR and os.path.isdir(_args.OUTPUT_DIR):  # a run that exists: its log
        try:
            with open(os.path.join(_args.OUTPUT_DIR, "log.txt"), "a") as f:
                f.write(line)
        except OSError:
            pass


def run(command: str, argv: Sequence[str], debug: bool = False) -> int:
    """Run one subcommand; user mistakes become exit status 2 with one message."""
    module = importlib.import_module(f"vidpool.cli.{COMMANDS[command][0]}")
    debug = debug or os.environ.get("VIDPOOL_DEBUG", "") not in ("", "0")
    try:
        return int(module.main(list(argv)) or 0)
    except KeyboardInterrupt:
        print(f"vidpool {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (sorted into the user's mistakes and failures below)
        if debug or not is_user_error(e):
            raise
        report_user_error(command, e)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if argv else 2
    if argv[0] in ("--version", "version"):
        from vidpool import __version__

        print(f"vidpool {__version__}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if command.endswith((".yaml", ".yml")) or command.startswith("--cfg"):
            hint = "; name the command first: vidpool train --cfg FILE"
        print(f"vidpool: error: unknown command {command!r}{hint}\n(see vidpool --help)", file=sys.stderr)
        return 2
    return run(command, argv[1:], debug)


def tool_main(command: str, argv: Optional[Sequence[str]] = None) -> int:
    """For the scripts in tools/ that stand for a subcommand (tools/train_net.py = vidpool train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    return run(command, [a for a in argv if a != "--debug"], debug)
