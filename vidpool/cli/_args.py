"""One command-line convention for every tool that reads a config: ``--cfg FILE`` plus trailing
``KEY VALUE`` overrides (the first upper-case config key starts them), ``--weights`` for a checkpoint,
``--out`` for outputs. Habits from other toolkits get a pointer instead of a confusing error."""
from __future__ import annotations

import argparse
import os
import re
from typing import List, Sequence, Tuple

from vidpool.config.check import ConfigError

OUTPUT_DIR = None  # the run folder of the config the command parsed last (its log gets the command's errors)
KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)+$")
# PySlowFast and mmaction2 spellings that mean something else here
HABITS = {"--config": "--cfg FILE", "--config-file": "--cfg FILE", "--config_file": "--cfg FILE",
          "--checkpoint": "--weights FILE", "--resume": "TRAIN.AUTO_RESUME True (the default)",
          "--opts": "KEY VALUE pairs at the end of the command (no --opts needed)",
          "--work-dir": "OUTPUT_DIR DIR at the end of the command", "--output": "--out"}


def _valid_keys() -> List[str]:
    from vidpool.config import get_cfg
    from vidpool.config import _all_keys

    return _all_keys(get_cfg())


def split_overrides(argv: Sequence[str], valid: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(options, overrides): the overrides start at the first token that is a config key (or looks
    like one of a config section, e.g. a misspelt TRAIN.BATCHSIZE, so that it is reported as such;
    an upper-case file name such as CLIP.MP4 is not taken for one)."""
    argv = list(argv)
    top = {k for k in valid if "." not in k}
    sections = {k.split(".")[0] for k in valid if "." in k}
    for i, token in enumerate(argv):
        keyish = token in top or (KEY.match(token) and token.split(".")[0] in sections)
        if keyish and not (i and argv[i - 1] in ("--cfg", "--weights", "--out")):
            return argv[:i], argv[i:]
    return argv, []


def habit_hint(argv: Sequence[str], valid: Sequence[str]) -> str:
    """A pointer for a spelling another toolkit uses, or ""."""
    upper = {k.lower(): k for k in valid}
    for i, token in enumerate(argv):
        name = token.split("=", 1)[0]
        if name in HABITS:
            return f"{name} is not an option here: use {HABITS[name]}"
        if token == "NUM_GPUS" or token.endswith(".NUM_GPUS") or token == "NUM_SHARDS":
            return (f"{token} is not a vidpool key: start one process per GPU with torchrun "
                    "(torchrun --nproc_per_node N -m vidpool train --cfg FILE); see docs/training.md")
        if token in upper and not os.path.exists(token):
            return f"config keys are upper case: {upper[token]}, not {token}"
        if i == 0 and token.endswith((".yaml", ".yml")):
            return f"give the config as --cfg {token}"
    return ""


class Parser(argparse.ArgumentParser):
    """argparse with the habit pointers: a user's mistake is one line and exit status 2."""

    def error(self, message):
        hint = habit_hint(self._argv, _valid_keys()) if getattr(self, "_argv", None) else ""
        self.exit(2, f"{self.prog}: error: {hint or message}\n(see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(args) if args is not None else None
        return super().parse_known_args(args, namespace)


def parser(prog: str, doc: str, cfg: str = "optional") -> Parser:
    """A parser for ``vidpool PROG``; ``cfg``: "required", "optional" or "none" (no --cfg option)."""
    ap = Parser(prog=f"vidpool {prog}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if cfg != "none":
        ap.add_argument("--cfg", required=cfg == "required", metavar="FILE",
                        help="YAML config; KEY VALUE pairs at the end override it (e.g. OUTPUT_DIR runs/a)")
    return ap


def parse_with_config(ap: Parser, argv: Sequence[str] = None):
    """(options, frozen config): options before the first config key, overrides after it. A bad key
    or value, an odd number of override words or a missing config file is a ConfigError."""
    import sys

    import yaml

    from vidpool.config import load_cfg

    argv = list(sys.argv[1:] if argv is None else argv)
    valid = _valid_keys()
    hint = habit_hint(argv, valid)
    if hint:
        ap._argv = argv
        ap.error(hint)
    head, overrides = split_overrides(argv, valid)
    args = ap.parse_args(head)
    path = getattr(args, "cfg", None)
    if path and not os.path.isfile(path):
        raise ConfigError(f"--cfg: no such file: {path}")
    try:
        cfg = load_cfg(path, overrides)
    except KeyError as e:
        raise ConfigError(str(e).strip("\"'")) from None
    except (ValueError, AssertionError, yaml.YAMLError) as e:  # fvcore: type mismatches are AssertionErrors
        raise ConfigError(f"{path or 'the overrides'}: {e}") from None
    args.overrides = overrides
    global OUTPUT_DIR
    OUTPUT_DIR = cfg.OUTPUT_DIR
    return args, cfg
