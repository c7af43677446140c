"""The whole config checked before any data is read: values, names of choices (with "did you mean")
and every file or folder it points to. Each problem is one line naming the key and what to do; all
problems are reported together in one ``ConfigError``."""
from __future__ import annotations

import difflib
import os
from typing import List, Sequence


class ConfigError(ValueError):
    """A mistake in the user's config or command line (tools report it without a traceback, exit 2)."""


def _suggest(value: str, choices: Sequence[str]) -> str:
    norm = {c.replace("_", "").replace("-", "").lower(): c for c in choices}
    key = str(value).replace("_", "").replace("-", "").lower()
    close = [norm[key]] if key in norm else difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def choice_problem(key: str, value, choices: Sequence[str]) -> List[str]:
    """[] when ``value`` is one of ``choices``, else one line naming the key, the choices and the closest."""
    if value in choices:
        return []
    listed = ", ".join(str(c) or '""' for c in choices) if len(choices) <= 12 else f"{len(choices)} names ({LISTS.get(key, '')})"
    return [f"{key} {value!r} is not one of: {listed}{_suggest(value, choices)}"]


LISTS = {"MODEL.ARCH": "vidpool info --list", "--arch": "vidpool info --list", "--model": "vidpool info --list",
         "MODEL.POOL": "python -c 'import vidpool.ops as o; print(o.list_pools())'"}


def _values(cfg) -> List[str]:
    problems = []
    positive = {"TRAIN.BATCH_SIZE": cfg.TRAIN.BATCH_SIZE, "TEST.BATCH_SIZE": cfg.TEST.BATCH_SIZE,
                "SOLVER.MAX_EPOCH": cfg.SOLVER.MAX_EPOCH, "DATA.NUM_FRAMES": cfg.DATA.NUM_FRAMES,
                "DATA.SAMPLING_RATE": cfg.DATA.SAMPLING_RATE, "DATA.TARGET_FPS": cfg.DATA.TARGET_FPS,
                "DATA.TRAIN_CROP_SIZE": cfg.DATA.TRAIN_CROP_SIZE, "DATA.TEST_CROP_SIZE": cfg.DATA.TEST_CROP_SIZE,
                "MODEL.NUM_CLASSES": cfg.MODEL.NUM_CLASSES, "MODEL.BASE_WIDTH": cfg.MODEL.BASE_WIDTH,
                "TEST.NUM_ENSEMBLE_VIEWS": cfg.TEST.NUM_ENSEMBLE_VIEWS}
    for key, value in positive.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            problems.append(f"{key} must be a number > 0, got {value!r}")
    if cfg.SOLVER.BASE_LR < 0:
        problems.append(f"SOLVER.BASE_LR must be >= 0, got {cfg.SOLVER.BASE_LR!r}")
    if cfg.LOG_PERIOD < 0:
        problems.append(f"LOG_PERIOD must be >= 0 (0: no progress lines), got {cfg.LOG_PERIOD}")
    if cfg.DATA_LOADER.NUM_WORKERS < 0:
        problems.append(f"DATA_LOADER.NUM_WORKERS must be >= 0 (0: decode in the main process), "
                        f"got {cfg.DATA_LOADER.NUM_WORKERS}")
    if cfg.TEST.NUM_SPATIAL_CROPS not in (1, 3):
        problems.append(f"TEST.NUM_SPATIAL_CROPS must be 1 (centre) or 3, got {cfg.TEST.NUM_SPATIAL_CROPS!r}")
    scales = list(cfg.DATA.TRAIN_JITTER_SCALES)
    if len(scales) != 2 or not all(isinstance(s, int) and s > 0 for s in scales) or scales[0] > scales[1]:
        problems.append(f"DATA.TRAIN_JITTER_SCALES must be [min, max] short sides with 0 < min <= max, got {scales}")
    elif scales[0] < cfg.DATA.TRAIN_CROP_SIZE and cfg.DATA.TRAIN_CROP_SIZE > 0:
        problems.append(f"DATA.TRAIN_JITTER_SCALES {scales} starts below DATA.TRAIN_CROP_SIZE "
                        f"{cfg.DATA.TRAIN_CROP_SIZE}: the crop would not fit; raise the scales or lower the crop")
    for key in ("MEAN", "STD"):
        v = list(cfg.DATA[key])
        if len(v) != 3 or (key == "STD" and min(v) <= 0):
            problems.append(f"DATA.{key} must be 3 per-channel values{' > 0' if key == 'STD' else ''}, got {v}")
    if not 0 <= cfg.MODEL.DROPOUT_RATE < 1:
        problems.append(f"MODEL.DROPOUT_RATE must be in [0, 1), got {cfg.MODEL.DROPOUT_RATE}")
    return problems


def _train_values(cfg) -> List[str]:
    t = cfg.TRAIN
    if t.EVAL_PERIOD < 0 or t.CHECKPOINT_PERIOD < 1 or t.CHECKPOINT_ITERS < 0 or t.KEEP_CHECKPOINTS < 0 \
            or t.KEEP_PERIOD < 0:
        return [f"TRAIN.EVAL_PERIOD must be >= 0 (0: no validation), TRAIN.CHECKPOINT_PERIOD >= 1 and "
                f"TRAIN.CHECKPOINT_ITERS, KEEP_CHECKPOINTS, KEEP_PERIOD >= 0; got {t.EVAL_PERIOD}, "
                f"{t.CHECKPOINT_PERIOD}, {t.CHECKPOINT_ITERS}, {t.KEEP_CHECKPOINTS}, {t.KEEP_PERIOD}"]
    if cfg.MULTIGRID.BN_BASE_SIZE < 0:
        return [f"MULTIGRID.BN_BASE_SIZE must be >= 0 (0: the per-process TRAIN.BATCH_SIZE), "
                f"got {cfg.MULTIGRID.BN_BASE_SIZE}"]
    return []


def _choices(cfg) -> List[str]:
    from vidpool.data.build import DATASETS, START_METHODS
    from vidpool.data.datasets.hacs import NEGATIVES
    from vidpool.data.decoding import BACKENDS
    from vidpool.data.sampling import SHORT_MODES
    from vidpool.engine.optim import POLICIES
    from vidpool.models import list_models
    from vidpool.ops import list_pools
    from vidpool.weights import SOURCES

    return (choice_problem("MODEL.ARCH", cfg.MODEL.ARCH, list_models())
            + choice_problem("MODEL.POOL", cfg.MODEL.POOL, list_pools())
            + choice_problem("MODEL.HEAD_POOL", cfg.MODEL.HEAD_POOL, ("avg", "max", "softpool"))
            + choice_problem("DATA.DECODER", cfg.DATA.DECODER, BACKENDS)
            + choice_problem("TRAIN.DATASET", cfg.TRAIN.DATASET, DATASETS)
            + choice_problem("TEST.DATASET", cfg.TEST.DATASET, DATASETS)
            + choice_problem("TEST.SPLIT", cfg.TEST.SPLIT, ("val", "test"))
            + choice_problem("DEVICE", cfg.DEVICE, ("auto", "cpu", "cuda"))
            + choice_problem("TRAIN.MIXED_PRECISION_DTYPE", cfg.TRAIN.MIXED_PRECISION_DTYPE,
                             ("auto", "float16", "bfloat16"))
            + choice_problem("SOLVER.LR_POLICY", cfg.SOLVER.LR_POLICY, POLICIES)
            + choice_problem("TRAIN.CHECKPOINT_TYPE", cfg.TRAIN.CHECKPOINT_TYPE, ("auto",) + tuple(SOURCES))
            + choice_problem("DATA.SHORT_CLIPS", cfg.DATA.SHORT_CLIPS, SHORT_MODES)
            + choice_problem("DATA.HACS_NEGATIVES", cfg.DATA.HACS_NEGATIVES, NEGATIVES)
            + choice_problem("DATA_LOADER.START_METHOD", cfg.DATA_LOADER.START_METHOD, START_METHODS))


def _files(cfg, train: bool, test: bool) -> List[str]:
    problems = []
    d = cfg.DATA

    def need(key, path, kind, todo=""):
        exists = os.path.isdir(path) if kind == "folder" else os.path.isfile(path) or os.path.isdir(path)
        if path and not exists:
            problems.append(f"{key}: no such {kind}: {path}{todo}")

    dataset = cfg.TRAIN.DATASET if train else cfg.TEST.DATASET  # the one these folders must hold
    data = f" (set {{}} to your copy; docs/data.md shows the layout of {dataset})"

    if train or test:
        if not d.PATH_TO_DATA_DIR:
            problems.append("DATA.PATH_TO_DATA_DIR is empty: set it to the folder of the annotation files "
                            "(docs/data.md shows each data set's layout)")
        need("DATA.PATH_TO_DATA_DIR", d.PATH_TO_DATA_DIR, "folder", data.format("DATA.PATH_TO_DATA_DIR"))
        need("DATA.PATH_PREFIX", d.PATH_PREFIX, "folder", data.format("DATA.PATH_PREFIX"))
        if d.ANNOTATION_FILE and d.PATH_TO_DATA_DIR:
            need("DATA.ANNOTATION_FILE", os.path.join(d.PATH_TO_DATA_DIR, d.ANNOTATION_FILE), "file")
    need("DATA.CLASS_NAMES_FILE", d.CLASS_NAMES_FILE, "file")
    resumes = False
    if train and cfg.TRAIN.AUTO_RESUME:  # a resumed run reads its own checkpoints, not the start file
        from vidpool.engine.checkpoint import list_checkpoints

        resumes = bool(list_checkpoints(cfg.OUTPUT_DIR))
    if train and not resumes:
        need("TRAIN.CHECKPOINT_FILE_PATH", cfg.TRAIN.CHECKPOINT_FILE_PATH, "file or run folder",
             " (train that run first, or name a checkpoint file)")
    if test:
        need("TEST.CHECKPOINT_FILE_PATH", cfg.TEST.CHECKPOINT_FILE_PATH, "file or run folder")
    return problems


def _decoding(cfg) -> List[str]:
    """DATA.DECODER torchcodec must load; DATA.DECODE_DEVICE cuda needs it, and loader workers that can
    start CUDA (a forked process cannot)."""
    d, problems = cfg.DATA, []
    if d.DECODE_DEVICE not in ("cpu", "cuda"):
        return choice_problem("DATA.DECODE_DEVICE", d.DECODE_DEVICE, ("cpu", "cuda"))
    if d.DECODE_DEVICE == "cuda":
        if d.DECODER != "torchcodec":
            problems.append(f"DATA.DECODE_DEVICE cuda decodes with torchcodec: set DATA.DECODER torchcodec "
                            f"(it is {d.DECODER!r}), or DATA.DECODE_DEVICE cpu")
        if cfg.DEVICE == "cpu":
            problems.append("DATA.DECODE_DEVICE cuda with DEVICE cpu: the clips would go back to the CPU; decode on "
                            "the CPU (DATA.DECODE_DEVICE cpu) or train on the GPU")
        if cfg.DATA_LOADER.NUM_WORKERS > 0 and cfg.DATA_LOADER.START_METHOD in ("", "fork"):
            problems.append(f"DATA.DECODE_DEVICE cuda with DATA_LOADER.NUM_WORKERS {cfg.DATA_LOADER.NUM_WORKERS}: a "
                            "forked loader worker cannot use CUDA; set DATA_LOADER.START_METHOD spawn (or "
                            "NUM_WORKERS 0: decode in the training process)")
    if d.DECODER == "torchcodec":
        from vidpool.data.decoding import TorchcodecUnavailable, torchcodec_decoder_class

        try:
            torchcodec_decoder_class()
        except TorchcodecUnavailable as e:
            problems.append(f"DATA.DECODER torchcodec: {e}")
    return problems


def check_cfg(cfg, train: bool = False, test: bool = False) -> None:
    """Raise ``ConfigError`` listing every problem of ``cfg``: its values and names always; with
    ``train`` / ``test`` also the data folders and checkpoint files those steps will read."""
    problems = _values(cfg) + (_train_values(cfg) if train else []) + _choices(cfg) + _decoding(cfg) + \
        _files(cfg, train, test)
    if problems:
        head = "the config has a problem:" if len(problems) == 1 else f"the config has {len(problems)} problems:"
        raise ConfigError(head + "".join(f"\n  - {p}" for p in problems))
