"""The clip dataset and loaders on the synthetic set: modes, views, per-batch shapes, bad files,
seeding and distributed partitioning."""
import logging
import os
import shutil

import pytest
import torch
from torch.utils.data import DistributedSampler

from vidpool.config import load_cfg
from vidpool.data import ClipBatchSampler, ClipShape, build_dataset, build_loader, decode_frames
from vidpool.data.datasets.base import VideoClipDataset, VideoRecord, collate_clips
from vidpool.data.sampling import frame_window, uniform_clips
from vidpool.models import model_input

SMALL = ["DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "8", "DATA.TRAIN_JITTER_SCALES", "[40, 48]",
         "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "40", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "6",
         "DATA_LOADER.NUM_WORKERS", "0", "MODEL.NUM_CLASSES", "5", "TEST.NUM_ENSEMBLE_VIEWS", "2"]


def _cfg(root, *extra):
    return load_cfg(None, ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101",
                           "DATA.PATH_TO_DATA_DIR", os.path.join(root, "ucf101")] + SMALL + list(extra))


def test_modes_and_views(synthetic_root):
    cfg = _cfg(synthetic_root)
    train, val, test = (build_dataset(cfg, s) for s in ("train", "val", "test"))
    assert train.num_classes == 5 and len(val) == len(val.records)
    assert len(test) == len(test.records) * 2 * 3
    s = train[0]
    assert s["clip"].shape == (3, 4, 32, 32) and s["valid"] and s["skipped"] == []
    a, b = val[1], val[1]
    assert torch.equal(a["clip"], b["clip"]) and a["clip"].shape == (3, 4, 32, 32)  # centred: deterministic
    item = test[7]  # record 1, temporal view 0, spatial view 1
    assert (item["index"], item["temporal_view"], item["spatial_view"]) == (1, 0, 1)
    rec = test.records[1]
    # the same clip built by hand from the pieces: the view's frames, resized and centre-cropped
    assert decode_frames(rec.path, [0]).shape[1:3] == (48, 64)  # the synthetic videos: 24 frames, 8 fps
    window = frame_window(8.0, 24, None, None)
    indices = uniform_clips(window, 4, 8 * 8.0 / 30, 2)[0]
    frames = decode_frames(rec.path, indices, short_side=40, exact=True)  # scaled by the decoder
    assert frames.shape[1:3] == (40, 53)
    # handed over as uint8: the centre 40 x 40 crop of the decoded frames, channels first
    assert item["clip"].dtype == torch.uint8
    torch.testing.assert_close(item["clip"], frames[:, :, 6:46].permute(3, 0, 1, 2), rtol=0, atol=0)
    assert not torch.equal(test[6]["clip"], test[9]["clip"])  # temporal views 0 and 1 differ


@pytest.mark.parametrize("channels_last", [False, True])
def test_workers_hand_over_uint8_and_model_input_normalises_as_before(synthetic_root, channels_last):
    """Batches from 2 loader workers hold uint8 clips (a quarter of float32's bytes through shared
    memory); model_input gives the model float32 clips equal to (x / 255 - mean) / std computed in
    float64 from the same pixels, per channel, in the layout the model's weights have."""
    cfg = _cfg(synthetic_root, "DATA_LOADER.NUM_WORKERS", "2", "DATA.MEAN", "[0.4, 0.45, 0.5]",
               "DATA.STD", "[0.2, 0.225, 0.25]", "MODEL.CHANNELS_LAST", str(channels_last))
    batch = next(iter(build_loader(cfg, "val")))
    clip = batch["clip"]
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 4, 32, 32)
    x = model_input(clip, torch.device("cpu"), cfg)
    mean = torch.tensor([0.4, 0.45, 0.5], dtype=torch.float64).view(3, 1, 1, 1)
    std = torch.tensor([0.2, 0.225, 0.25], dtype=torch.float64).view(3, 1, 1, 1)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), (clip.double() / 255 - mean) / std, rtol=0, atol=1e-5)
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    assert x.is_contiguous(memory_format=layout)
    # already-normalised float clips (a caller's own) pass through unchanged
    assert torch.equal(model_input(x, torch.device("cpu"), cfg), x)


def test_per_batch_shapes_with_workers(synthetic_root):
    cfg = _cfg(synthetic_root, "DATA_LOADER.NUM_WORKERS", "2")
    loader = build_loader(cfg, "train")
    small = ClipShape(2, 4, 24, (28, 32))
    shapes = []
    for i, batch in enumerate(loader):
        shapes.append(tuple(batch["clip"].shape[2:]))
        if i == 0:
            loader.batch_sampler.set_shape(small, batch_size=2)
    big, little = (4, 32, 32), (2, 24, 24)
    assert shapes[0] == big and shapes[-1] == little and set(shapes) == {big, little}
    assert shapes == sorted(shapes, key=lambda s: s != big)  # one switch, never back
    assert len(batch["label"]) == 2  # batches queued before the switch keep their shape and size


def test_cycled_batch_shapes_and_lengths():
    """set_cycle: consecutive batches take the (shape, size) pairs in turn; len() counts them."""
    a, b, c = ClipShape(4, 2, 8, (8, 9)), ClipShape(4, 2, 12, (12, 13)), ClipShape(4, 2, 16, (16, 18))
    sampler = ClipBatchSampler(range(23), 2, c)
    sampler.set_cycle([(a, 4), (b, 2), (c, 1)])
    batches = list(sampler)
    # 23 indices: 4+2+1 = 7 per cycle -> 3 whole cycles (21) and a partial first batch of 2
    assert [len(x) for x in batches] == [4, 2, 1] * 3 + [2]
    assert [x[0][1].crop_size for x in batches] == [8, 12, 16] * 3 + [8]
    assert [i for x in batches for i, _, _ in x] == list(range(23))
    assert len(sampler) == 10
    sampler.drop_last = True
    assert len(sampler) == 9 and len(list(sampler)) == 9
    # the partial cycle fills its first batch and half of the second: 7 + 4 + 1 indices
    sampler = ClipBatchSampler(range(12), 1, c, drop_last=True)
    sampler.set_cycle([(a, 4), (b, 2), (c, 1)])
    assert len(sampler) == len(list(sampler)) == 4
    with pytest.raises(ValueError, match="batch size"):
        sampler.set_cycle([(a, 0)])


def test_seeded_loaders_repeat(synthetic_root):
    cfg = _cfg(synthetic_root, "DATA_LOADER.NUM_WORKERS", "2", "RNG_SEED", "7")
    first = [next(iter(build_loader(cfg, "train"))) for _ in range(2)]
    assert torch.equal(first[0]["label"], first[1]["label"]) and torch.equal(first[0]["clip"], first[1]["clip"])


def _bad_copies(tmp_path, synthetic_root):
    """A path-label list over 3 good videos, a zero-byte one, a text file, a cut file and a missing one."""
    ucf = build_dataset(_cfg(synthetic_root), "train")
    good = [r.path for r in ucf.records[:3]]
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    (tmp_path / "cut.mp4").write_bytes(open(good[0], "rb").read()[:300])
    bad = [str(tmp_path / n) for n in ("zero.mp4", "text.mp4", "cut.mp4", "missing.mp4")]
    return good, bad


def test_bad_videos_in_training_are_replaced_and_counted(tmp_path, synthetic_root, caplog):
    good, bad = _bad_copies(tmp_path, synthetic_root)
    records = [VideoRecord(p, 0, os.path.basename(p)) for p in good + bad]
    ds = VideoClipDataset(records, ["a"], "train", ClipShape(4, 8, 32, (40, 48)))
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, "vidpool.data"):
        batch = collate_clips([ds[i] for i in range(len(records))] + [ds[i] for i in range(3, len(records))])
    assert batch["valid"].all() and batch["clip"].shape == (11, 3, 4, 32, 32)
    assert set(batch["skipped"]) == set(bad) and len(batch["skipped"]) >= 8  # every bad item counted
    for path in bad:
        assert caplog.text.count(path) == 1  # warned once per file
    all_bad = VideoClipDataset([VideoRecord(p, 0, "x") for p in bad], ["a"], "train",
                               ClipShape(4, 8, 32, (40, 48)), max_retries=3)
    with pytest.raises(RuntimeError, match="4 unreadable videos in a row"):
        all_bad[0]


def test_bad_videos_in_testing_are_flagged_not_dropped(tmp_path, synthetic_root):
    good, bad = _bad_copies(tmp_path, synthetic_root)
    records = [VideoRecord(p, 0, os.path.basename(p)) for p in good + bad]
    ds = VideoClipDataset(records, ["a"], "test", ClipShape(4, 8, 32, (40, 48)), test_crop_size=40, num_views=2,
                          num_crops=1)
    batch = collate_clips([ds[i] for i in range(len(ds))])
    assert len(batch["valid"]) == 2 * len(records)
    assert batch["valid"].tolist() == [True] * 6 + [False] * 8
    assert batch["clip"].shape == (14, 3, 4, 40, 40) and sorted(set(batch["skipped"])) == sorted(bad)


def test_missing_files_kept_for_evaluation_only(tmp_path, synthetic_root):
    root = tmp_path / "ucf101"
    shutil.copytree(os.path.join(synthetic_root, "ucf101"), root)
    folder = root / "UCF-101" / "MovingLeft"
    removed = sorted(folder.iterdir())[0]
    removed.unlink()
    cfg = load_cfg(None, ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR", str(root)]
                   + SMALL)
    full = _cfg(synthetic_root)
    for split in ("train", "test"):
        n_before = len(build_dataset(full, split).records)
        n_after = len(build_dataset(cfg, split).records)
        listed = removed.name in open(root / "ucfTrainTestlist" / f"{split}list01.txt").read()
        assert n_after == n_before - (listed and split == "train")


def test_distributed_partition(synthetic_root):
    ds = build_dataset(_cfg(synthetic_root), "train")
    shape = ClipShape(4, 8, 32, (40, 48))
    parts = []
    for rank in range(2):
        sampler = ClipBatchSampler(DistributedSampler(ds, 2, rank, shuffle=True, seed=0, drop_last=True), 3, shape)
        parts.append([i for batch in sampler for i, s, _ in batch])
        assert all(s == shape for batch in sampler for _, s, _ in batch)
    assert not set(parts[0]) & set(parts[1]) and len(parts[0]) == len(parts[1]) == len(ds) // 2
    sampler = ClipBatchSampler(DistributedSampler(ds, 2, 0, shuffle=True, seed=0), 3, shape)
    epoch0 = [i for b in sampler for i, _, _ in b]
    sampler.set_epoch(1)
    assert [i for b in sampler for i, _, _ in b] != epoch0


def test_build_dataset_errors(synthetic_root):
    with pytest.raises(ValueError, match="unknown dataset 'sports1m'"):
        build_dataset(_cfg(synthetic_root, "TRAIN.DATASET", "sports1m"), "train")
    with pytest.raises(ValueError, match="PATH_TO_DATA_DIR is not set"):
        build_dataset(_cfg(synthetic_root, "DATA.PATH_TO_DATA_DIR", ""), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset(_cfg(synthetic_root), "validation")
    with pytest.raises(FileNotFoundError, match="classInd.txt"):
        build_dataset(_cfg(synthetic_root, "DATA.PATH_TO_DATA_DIR", synthetic_root), "train")


def test_hacs_and_kinetics_through_the_config(synthetic_root):
    classes = os.path.join(synthetic_root, "classes.txt")
    for name in ("hacs", "kinetics"):
        root = os.path.join(synthetic_root, name)
        cfg = load_cfg(None, ["TRAIN.DATASET", name, "TEST.DATASET", name, "DATA.PATH_TO_DATA_DIR", root,
                              "DATA.PATH_PREFIX", os.path.join(root, "videos"), "DATA.CLASS_NAMES_FILE", classes]
                       + SMALL)
        train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
        assert train.classes == test.classes and train.num_classes == 5
        assert len(train.records) + len(test.records) == 40
        batch = next(iter(build_loader(cfg, "test", dataset=test)))
        assert batch["clip"].shape == (6, 3, 4, 40, 40) and batch["valid"].all()


def test_evaluation_shards_count_every_sample_once():
    from vidpool.data.samplers import ShardSampler
    shards = [list(ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11)) and [len(s) for s in shards] == [4, 4, 3]
    with pytest.raises(ValueError):
        ShardSampler(5, 3, 3)


def test_training_draws_the_sampling_rate_from_the_shape_range(synthetic_root, monkeypatch):
    """A ClipShape with max_sampling_rate (multigrid's long cycle) gives each training clip a rate
    drawn from [sampling_rate, max_sampling_rate]; the synthetic videos are 8 fps, rates count at 30."""
    import vidpool.data.datasets.base as base

    steps = []
    original = base.random_clip

    def recording(window, num_frames, step, rng, short):
        steps.append(step)
        return original(window, num_frames, step, rng, short)

    monkeypatch.setattr(base, "random_clip", recording)
    ds = build_dataset(_cfg(synthetic_root), "train")
    ranged = ClipShape(2, 4, 32, (40, 48), max_sampling_rate=16)
    for i in range(40):
        assert ds[(i % len(ds), ranged)]["clip"].shape == (3, 2, 32, 32)
    rates = {round(s * 30 / 8) for s in steps}
    assert rates <= set(range(4, 17)) and len(rates) >= 5
    steps.clear()
    ds[(0, ClipShape(2, 4, 32, (40, 48)))]
    assert [round(s * 30 / 8) for s in steps] == [4]
    with pytest.raises(ValueError, match="max_sampling_rate"):
        ClipShape(2, 4, 32, (40, 48), max_sampling_rate=3)


def test_every_missing_video_is_listed_in_the_run_folder(synthetic_root, tmp_path, caplog):
    """At HACS scale videos vanish from YouTube by the thousand: two examples in the log are not
    enough, so each split writes the full list into OUTPUT_DIR, training, validation and test alike."""
    from vidpool.config import load_cfg
    from vidpool.data import build_dataset

    root = tmp_path / "ucf"
    shutil.copytree(os.path.join(synthetic_root, "ucf101"), root)
    gone = sorted(str(p) for p in (root / "UCF-101").rglob("*.avi"))[::7]  # in every split
    for p in gone:
        os.remove(p)
    out = tmp_path / "run"
    cfg = load_cfg(None, ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR", str(root),
                          "MODEL.NUM_CLASSES", "5", "OUTPUT_DIR", str(out)])
    listed = []
    with caplog.at_level(logging.WARNING):
        for split in ("train", "val", "test"):
            build_dataset(cfg, split)
            listed.append(set((out / f"missing_videos_{split}.txt").read_text().split()))
    assert all(listed) and set.union(*listed) == set(gone) and sum(map(len, listed)) == len(gone)
    assert f"every one is listed in {out / 'missing_videos_train.txt'}" in caplog.text
