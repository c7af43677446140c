"""``build_dataset(cfg, split)`` and ``build_loader(cfg, split)``: the config read once, here.

Splits: ``train`` (random clips, augmentation; TRAIN.DATASET), ``val`` (one centred clip per video at
the training crop size; TRAIN.DATASET), ``test`` (TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS
views per video; TEST.DATASET, annotations of split TEST.SPLIT). Validation and testing need labelled
videos: a split without any (HACS and Kinetics-700 test labels are withheld) is an error that says
so. Training drops annotated videos that are missing on disk (the count is logged); val and test keep
them, so they are counted as failures and never vanish from the metrics.
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple, Optional

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from .datasets.base import IndexReport, VideoClipDataset, collate_clips, packaged_classes, read_class_names
from .datasets.hacs import read_hacs
from .datasets.kinetics import SPLIT_FILES as KINETICS_SPLIT_FILES
from .datasets.kinetics import annotation_file as kinetics_annotation_file
from .datasets.kinetics import read_kinetics
from .datasets.ucf101 import list_dir as ucf101_list_dir
from .datasets.ucf101 import list_file as ucf101_list_file
from .datasets.ucf101 import read_class_index, read_ucf101
from .frame_cache import frame_cache
from .sampling import ClipShape
from .samplers import ClipBatchSampler, ShardSampler, distributed
from .workers import Loader, worker_init

log = logging.getLogger("vidpool.data")

DATASETS = ("hacs", "kinetics", "ucf101")
SPLITS = ("train", "val", "test")


def default_shape(cfg) -> ClipShape:
    """The clip shape the config asks for (multigrid changes it per batch, never the config)."""
    d = cfg.DATA
    return ClipShape(d.NUM_FRAMES, d.SAMPLING_RATE, d.TRAIN_CROP_SIZE, tuple(d.TRAIN_JITTER_SCALES))


def _classes(cfg, official: str):
    path = cfg.DATA.CLASS_NAMES_FILE or packaged_classes(official)
    return read_class_names(path)


def dataset_classes(cfg, split: str = "test") -> list:
    """The class names of ``split``'s dataset in label order, as ``read_annotations`` gives them, without
    reading any annotation rows (UCF-101: its classInd.txt; HACS, Kinetics: the official lists or
    DATA.CLASS_NAMES_FILE; HACS with HACS_NEGATIVES background: plus "background")."""
    name = (cfg.TEST.DATASET if split == "test" else cfg.TRAIN.DATASET).lower()
    if name == "hacs":
        classes = _classes(cfg, "hacs_200")
        return classes + ["background"] if cfg.DATA.HACS_NEGATIVES == "background" else classes
    if name == "kinetics":
        return _classes(cfg, "kinetics700")
    if name == "ucf101":
        return read_class_index(os.path.join(ucf101_list_dir(cfg.DATA.PATH_TO_DATA_DIR), "classInd.txt"))
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} (TRAIN.DATASET / TEST.DATASET)")


class Annotations(NamedTuple):
    """What the readers found for one split: dataset name, annotation split read, records, report,
    classes, and the annotation files of the dataset (the split's own first)."""
    dataset: str
    source: str
    records: list
    report: IndexReport
    classes: list
    files: list


def read_annotations(cfg, split: str, keep_missing: bool) -> Annotations:
    """The records of ``split`` (train, val, or test: the TEST.SPLIT annotations of TEST.DATASET)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    name = (cfg.TEST.DATASET if split == "test" else cfg.TRAIN.DATASET).lower()
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} (TRAIN.DATASET / TEST.DATASET)")
    d = cfg.DATA
    if cfg.TEST.SPLIT not in ("val", "test"):
        raise ValueError(f"TEST.SPLIT must be val or test, got {cfg.TEST.SPLIT!r}")
    source = cfg.TEST.SPLIT if split == "test" else split  # the annotation split to read
    if not d.PATH_TO_DATA_DIR:
        raise ValueError("DATA.PATH_TO_DATA_DIR is not set: point it at the folder of the annotation files")
    ann_dir, root = d.PATH_TO_DATA_DIR, d.PATH_PREFIX or d.PATH_TO_DATA_DIR
    if name == "hacs":
        classes = _classes(cfg, "hacs_200")
        ann = os.path.join(ann_dir, d.ANNOTATION_FILE or "HACS_clips_v1.1.1.csv")
        records, report = read_hacs(ann, root, source, classes, d.HACS_NEGATIVES, d.SKIP_BAD_ROWS, keep_missing)
        if d.HACS_NEGATIVES == "background":
            classes = classes + ["background"]
        files = [ann]
    elif name == "kinetics":
        classes = _classes(cfg, "kinetics700")
        records, report = read_kinetics(ann_dir, root, source, classes, d.SKIP_BAD_ROWS, keep_missing)
        own = kinetics_annotation_file(ann_dir, source)
        files = [own] + [os.path.join(ann_dir, f) for fs in KINETICS_SPLIT_FILES.values() for f in fs
                         if os.path.isfile(os.path.join(ann_dir, f)) and os.path.join(ann_dir, f) != own]
    else:
        records, report, classes = read_ucf101(ann_dir, root, source, d.UCF101_SPLIT, d.SKIP_BAD_ROWS, keep_missing)
        lists = ucf101_list_dir(ann_dir)
        own = ucf101_list_file(lists, source, d.UCF101_SPLIT)
        files = [own] + sorted(os.path.join(lists, f) for f in os.listdir(lists)
                               if f.endswith(".txt") and os.path.join(lists, f) != own)
        if d.CLASS_NAMES_FILE:
            log.warning("DATA.CLASS_NAMES_FILE is ignored for UCF-101: classInd.txt gives the classes")
    return Annotations(name, source, records, report, classes, files)


def write_missing_videos(output_dir: str, split: str, paths) -> Optional[str]:
    """Write every annotated video not found on disk to OUTPUT_DIR/missing_videos_SPLIT.txt, one path
    (as looked for) a line; returns the file (None on other ranks or when it cannot be written)."""
    rank, _ = distributed()
    if rank != 0 or not output_dir:
        return None
    path = os.path.join(output_dir, f"missing_videos_{split}.txt")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with open(path, "w") as f:
            f.writelines(p + "\n" for p in paths)
    except OSError as e:
        log.warning("cannot write the list of missing videos to %s: %s", path, e)
        return None
    return path


def build_dataset(cfg, split: str) -> VideoClipDataset:
    name, source, records, report, classes, _ = read_annotations(cfg, split, keep_missing=split != "train")
    d = cfg.DATA
    log.info("%s", report)
    if report.missing:
        listed = write_missing_videos(cfg.OUTPUT_DIR, split, report.missing_paths)
        what = "left out" if split == "train" else "counted as unreadable"
        log.warning("%d annotated %s videos are missing and %s (e.g. %s)%s", report.missing, split, what,
                    ", ".join(report.missing_examples[:2]), f"; every one is listed in {listed}" if listed else "")
    if split != "train" and records and not any(r.label >= 0 for r in records):
        hint = " (its labels are withheld: set TEST.SPLIT val)" if split == "test" and source == "test" else ""
        raise ValueError(f"{report.source}: none of the {len(records)} videos of the {source} split has a "
                         f"label, so there is nothing to measure accuracy on{hint}")
    cache = frame_cache(cfg)
    if cache is not None:
        log.info("%s %s: frames from the cache %s (stored at short side %d; videos not in it are decoded once "
                 "and added)", name, source, cache.root, cache.short_side)
    if cfg.MODEL.NUM_CLASSES != len(classes):
        log.warning("MODEL.NUM_CLASSES is %d but the %s classes number %d", cfg.MODEL.NUM_CLASSES, name, len(classes))
    return VideoClipDataset(
        records, classes, split, default_shape(cfg), decoder=d.DECODER, decode_device=d.DECODE_DEVICE,
        target_fps=d.TARGET_FPS, test_crop_size=d.TEST_CROP_SIZE, num_views=cfg.TEST.NUM_ENSEMBLE_VIEWS,
        num_crops=cfg.TEST.NUM_SPATIAL_CROPS, short=d.SHORT_CLIPS, flip=d.RANDOM_FLIP, max_retries=d.MAX_RETRIES,
        name=f"{name} {source}", frame_cache=cache)


START_METHODS = ("", "fork", "spawn", "forkserver")  # DATA_LOADER.START_METHOD ("": the platform's default)


def build_loader(cfg, split: str, dataset: Optional[VideoClipDataset] = None, shape: Optional[ClipShape] = None,
                 batch_size: Optional[int] = None) -> DataLoader:
    """A DataLoader over ``build_dataset(cfg, split)`` (or ``dataset``). ``TRAIN.BATCH_SIZE`` /
    ``TEST.BATCH_SIZE`` are totals over processes; each process loads its share. Under
    torch.distributed the indices are split with a DistributedSampler; call
    ``loader.batch_sampler.set_epoch(epoch)`` every epoch, and ``loader.batch_sampler.set_shape(...)``
    to change the clip shape. Evaluation splits are sharded without padding (no sample counted twice)."""
    dataset = build_dataset(cfg, split) if dataset is None else dataset
    rank, world = distributed()
    total = batch_size or (cfg.TRAIN.BATCH_SIZE if split != "test" else cfg.TEST.BATCH_SIZE)
    if total % world:
        raise ValueError(f"batch size {total} is not divisible by the {world} processes")
    train = split == "train"
    generator = torch.Generator().manual_seed(cfg.RNG_SEED + rank)
    if world > 1 and train:
        sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=cfg.RNG_SEED, drop_last=True)
    elif world > 1:  # evaluation: each sample exactly once over all processes
        sampler = ShardSampler(len(dataset), rank, world)
    elif train:
        # its own generator: the DataLoader draws worker seeds from its generator when it starts
        # workers (once with persistent workers), which would shift the order of a resumed run
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.RNG_SEED + rank))
    else:
        sampler = SequentialSampler(dataset)
    batches = ClipBatchSampler(sampler, total // world, shape or default_shape(cfg), drop_last=train,
                               seed=cfg.RNG_SEED + rank)
    workers = cfg.DATA_LOADER.NUM_WORKERS
    method = cfg.DATA_LOADER.START_METHOD or None
    return Loader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_clips,
                  pin_memory=(cfg.DATA_LOADER.PIN_MEMORY and torch.cuda.is_available()
                              and dataset.decode_device == "cpu"),  # clips decoded on the GPU are there
                  persistent_workers=cfg.DATA_LOADER.PERSISTENT_WORKERS and workers > 0,
                  worker_init_fn=worker_init(), generator=generator,
                  multiprocessing_context=method if workers > 0 else None)


def iterate(loader: DataLoader):
    """The loader's batches; when a worker process dies (a decoder that crashes the process), the run
    stops with the videos the workers were reading instead of PyTorch's bare worker message."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as e:
            if "DataLoader worker" not in str(e):
                raise
            reading = getattr(loader.dataset, "reading", None)
            files = reading.paths() if reading is not None else []
            raise RuntimeError(f"{e.args[0] if e.args else e}. The videos being read when it died: "
                               f"{', '.join(files) or 'unknown'}. Scan the split with `vidpool check-data` and "
                               "train on the cleaned annotation file it writes") from e
        yield batch
