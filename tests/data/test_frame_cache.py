"""The decoded-frame cache (DATA.FRAME_CACHE): clips read from it are the decoder's clips, entries hold
exactly the decoder's frames, and stale, broken or unwritable caches never change a clip."""
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidpool.config import load_cfg
from vidpool.data import build_dataset, build_loader, decode_frames
from vidpool.data import frame_cache as frame_cache_module
from vidpool.data.datasets.synthetic import make_synthetic_dataset
from vidpool.data.frame_cache import FrameCache

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# clips cut at the videos' own short side (48): the decoder does not scale, so cached and decoded
# clips must agree exactly; the training crop is random, the scale fixed
EXACT = ["DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "8", "DATA.TRAIN_JITTER_SCALES", "[48, 48]",
         "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "48", "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "6",
         "DATA_LOADER.NUM_WORKERS", "0", "MODEL.NUM_CLASSES", "5", "TEST.NUM_ENSEMBLE_VIEWS", "2",
         "TEST.NUM_SPATIAL_CROPS", "3"]
VAL48 = ["DATA.TRAIN_CROP_SIZE", "48"]  # validation clips are cut at the training crop size


def _cfg(root, *extra):
    return load_cfg(None, ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101",
                           "DATA.PATH_TO_DATA_DIR", os.path.join(root, "ucf101")] + EXACT + list(extra))


def _no_decoding(monkeypatch):
    """From here on the cache cannot decode: every clip must come from an entry on disk."""
    def refuse(*a, **k):
        raise AssertionError("the frame cache decoded a video it should have had")
    monkeypatch.setattr(frame_cache_module, "read_clip", refuse)


def _entries(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".npy"))


def _items(dataset, split, n):
    if split == "train":  # seeded items: the same random choices with and without the cache
        return [dataset[(i, dataset.shape, 1000 + i)] for i in range(n)]
    return [dataset[i] for i in range(n)]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_cached_clips_are_the_decoded_clips(synthetic_root, tmp_path, monkeypatch, split):
    cache_dir = str(tmp_path / "cache")
    args = VAL48 if split == "val" else []
    plain = build_dataset(_cfg(synthetic_root, *args), split)
    cached = build_dataset(_cfg(synthetic_root, *args, "DATA.FRAME_CACHE", cache_dir), split)
    n = min(12, len(plain))  # the synthetic set's validation split has one video per class
    want = _items(plain, split, n)
    first = _items(cached, split, n)  # fills the cache
    videos = {plain.records[s["index"]].path for s in want}
    assert len(_entries(cache_dir)) == len(videos)
    _no_decoding(monkeypatch)
    second = _items(cached, split, n)  # reads it
    for a, b, c in zip(want, first, second):
        assert a["valid"] and b["valid"] and c["valid"]
        assert (a["index"], a["temporal_view"], a["spatial_view"]) == (b["index"], b["temporal_view"], b["spatial_view"])
        torch.testing.assert_close(b["clip"], a["clip"], rtol=0, atol=0)
        torch.testing.assert_close(c["clip"], a["clip"], rtol=0, atol=0)


def test_an_entry_holds_the_decoders_frames(synthetic_root, tmp_path):
    cfg = _cfg(synthetic_root)
    path = build_dataset(cfg, "val").records[0].path
    frames, info, hit = FrameCache(str(tmp_path), 48).frames(path)
    assert not hit and info.num_frames == 24 and (info.width, info.height) == (64, 48)
    expected = decode_frames(path, list(range(24))).numpy()
    np.testing.assert_array_equal(frames, expected)
    (entry,) = _entries(str(tmp_path))
    np.testing.assert_array_equal(np.load(entry), expected)  # the bytes on disk
    assert FrameCache(str(tmp_path), 48).frames(path)[2]  # a second reader finds it


@pytest.fixture(scope="module")
def large_root(tmp_path_factory):
    """Six videos at 96x128: the cache stores them at short side 48, scaled by the decoder."""
    root = str(tmp_path_factory.mktemp("large"))
    make_synthetic_dataset(root, num_videos=6, num_classes=2, seed=5, frames=16, fps=8, size=(96, 128), workers=1,
                           progress=False)
    return root


def test_large_videos_are_stored_scaled_and_read_as_decoded(large_root, tmp_path, monkeypatch):
    args = ["MODEL.NUM_CLASSES", "2", "DATA.FRAME_CACHE", str(tmp_path)]
    plain = build_dataset(_cfg(large_root, "MODEL.NUM_CLASSES", "2"), "train")
    cached = build_dataset(_cfg(large_root, *args), "train")
    path = plain.records[0].path
    stored = FrameCache(str(tmp_path), 48).frames(path)[0]
    np.testing.assert_array_equal(stored, decode_frames(path, list(range(16)), short_side=48, exact=True).numpy())
    assert stored.shape == (16, 48, 64, 3)
    want = [plain[(i, plain.shape, i)]["clip"] for i in range(len(plain))]
    for rnd in range(2):  # filling the cache, then from it alone
        if rnd:
            _no_decoding(monkeypatch)
        for i in range(len(plain)):
            torch.testing.assert_close(cached[(i, cached.shape, i)]["clip"], want[i], rtol=0, atol=0)


def test_clips_of_other_sizes_are_scaled_from_the_entry(synthetic_root, tmp_path):
    """A test crop of 40 from frames stored at 48: the transforms scale them (antialiased), where the
    decoder scales in swscale: the same clip up to interpolation."""
    args = ["DATA.TEST_CROP_SIZE", "40"]
    plain = build_dataset(_cfg(synthetic_root, *args), "test")
    cached = build_dataset(_cfg(synthetic_root, *args, "DATA.FRAME_CACHE", str(tmp_path)), "test")
    for i in range(6):
        a, b = plain[i]["clip"].float(), cached[i]["clip"].float()  # uint8 grey levels
        assert b.shape == a.shape == (3, 4, 40, 40)
        err = (a - b).abs()
        assert err.mean() < 6 and torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.98


def _copy_videos(root, tmp_path):
    """A private copy of the synthetic set (the tests below edit its files)."""
    copy = str(tmp_path / "data")
    shutil.copytree(root, copy)
    return copy


def test_a_replaced_video_is_read_anew(synthetic_root, tmp_path):
    root = _copy_videos(synthetic_root, tmp_path)
    cfg = _cfg(root, "DATA.FRAME_CACHE", str(tmp_path / "cache"))
    dataset = build_dataset(cfg, "val")
    before = dataset[0]["clip"]
    a, b = dataset.records[0].path, dataset.records[1].path
    shutil.copyfile(b, a)  # video 0 now holds video 1's frames
    os.utime(a, ns=(os.stat(a).st_atime_ns, os.stat(a).st_mtime_ns + 10 ** 9))
    after = dataset[0]["clip"]
    torch.testing.assert_close(after, dataset[1]["clip"], rtol=0, atol=0)
    assert not torch.equal(after, before)


def test_a_broken_entry_is_decoded_again(synthetic_root, tmp_path, caplog):
    cache_dir = str(tmp_path / "cache")
    dataset = build_dataset(_cfg(synthetic_root, "DATA.FRAME_CACHE", cache_dir), "val")
    want = dataset[0]["clip"]
    (entry,) = _entries(cache_dir)
    size = os.path.getsize(entry)
    with open(entry, "r+b") as f:
        f.truncate(size // 2)
    with caplog.at_level(logging.WARNING, logger="vidpool.data"):
        got = dataset[0]["clip"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert "unreadable" in caplog.text and os.path.getsize(entry) == size  # rewritten whole


def test_an_unwritable_cache_changes_nothing(synthetic_root, tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    plain = build_dataset(_cfg(synthetic_root, *VAL48), "val")
    cached = build_dataset(_cfg(synthetic_root, *VAL48, "DATA.FRAME_CACHE", str(blocker)), "val")
    with caplog.at_level(logging.WARNING, logger="vidpool.data"):
        for i in range(4):
            torch.testing.assert_close(cached[i]["clip"], plain[i]["clip"], rtol=0, atol=0)
    assert caplog.text.count("cannot be written") == 1


def test_unreadable_videos_fail_as_without_the_cache(synthetic_root, tmp_path):
    root = _copy_videos(synthetic_root, tmp_path)
    cache_dir = str(tmp_path / "cache")
    plain = build_dataset(_cfg(root), "test")
    path = plain.records[0].path
    with open(path, "w") as f:
        f.write("not a video")
    cached = build_dataset(_cfg(root, "DATA.FRAME_CACHE", cache_dir), "test")
    a, b = plain[0], cached[0]
    assert not a["valid"] and not b["valid"] and a["bad"] == b["bad"] and b["bad"][0][0] == path
    assert _entries(cache_dir) == []


def test_loader_workers_share_the_cache(synthetic_root, tmp_path):
    cache_dir = str(tmp_path / "cache")
    workers = ["DATA_LOADER.NUM_WORKERS", "2"] + VAL48
    plain = list(build_loader(_cfg(synthetic_root, *workers), "val"))
    for _ in range(2):  # filled by the workers, then read by them
        cached = list(build_loader(_cfg(synthetic_root, *workers, "DATA.FRAME_CACHE", cache_dir), "val"))
        assert len(cached) == len(plain)
        for a, b in zip(plain, cached):
            assert torch.equal(a["index"], b["index"])
            torch.testing.assert_close(b["clip"], a["clip"], rtol=0, atol=0)
    assert len(_entries(cache_dir)) == len(build_dataset(_cfg(synthetic_root), "val").records)
    assert not [f for d, _, fs in os.walk(cache_dir) for f in fs if f.endswith(".tmp")]


def test_cache_frames_tool(synthetic_root, tmp_path):
    cache_dir = str(tmp_path / "cache")
    cfg = _cfg(synthetic_root)
    # by default the splits a training run reads: with validation on, the val videos too
    videos = {r.path for s in ("train", "val", "test") for r in build_dataset(cfg, s).records}
    assert len(videos) > len({r.path for s in ("train", "test") for r in build_dataset(cfg, s).records})
    cmd = [sys.executable, "-m", "vidpool", "cache-frames", "--workers", "2", "TRAIN.EVAL_PERIOD", "1",
           "TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101",
           "DATA.PATH_TO_DATA_DIR", os.path.join(synthetic_root, "ucf101"), "DATA.FRAME_CACHE", cache_dir] + EXACT
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{len(videos)} videos added, 0 already cached, 0 unreadable" in out.stdout
    entries = _entries(cache_dir)
    assert len(entries) == len(videos)
    path = sorted(videos)[0]
    np.testing.assert_array_equal(np.load(FrameCache(cache_dir, 48).entry(path) + ".npy"),
                                  decode_frames(path, list(range(24))).numpy())
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"0 videos added, {len(videos)} already cached" in again.stdout
    missing = subprocess.run(cmd[:-len(EXACT) - 2] + EXACT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "DATA.FRAME_CACHE is not set" in missing.stderr
