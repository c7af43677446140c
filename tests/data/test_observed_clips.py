"""What the data pipeline does, read off the pixels: videos whose pixel values encode their own
coordinates (red = column, green = row, blue = 5 x frame index), written losslessly, go through
``build_dataset`` as a user's config would send them; each clip then says where it was cropped, at
which scale, whether it was flipped and which frames it holds."""
import os

import av
import numpy as np
import pytest
import torch

from vidpool.config import load_cfg
from vidpool.data import build_dataset

H, W, FPS = 120, 160, 10


def _write_coordinate_video(path, frames):
    ys, xs = np.mgrid[0:H, 0:W]
    with av.open(path, "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for t in range(frames):
            rgb = np.stack([xs, ys, np.full_like(xs, 5 * t)], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def coordinate_root(tmp_path_factory):
    """UCF-101 layout, one class: video 0 has 40 frames (4 s), video 1 has 6."""
    root = tmp_path_factory.mktemp("coordinates")
    lists, videos = root / "ucfTrainTestlist", root / "Coord"
    lists.mkdir(), videos.mkdir()
    names = ["v_Coord_g01_c01.mkv", "v_Coord_g02_c01.mkv"]
    for name, frames in zip(names, (40, 6)):
        _write_coordinate_video(str(videos / name), frames)
    (lists / "classInd.txt").write_text("1 Coord\n")
    (lists / "trainlist01.txt").write_text("".join(f"Coord/{n} 1\n" for n in names))
    (lists / "testlist01.txt").write_text("".join(f"Coord/{n}\n" for n in names))
    return str(root)


def _cfg(root, *extra):
    return load_cfg(None, ["TRAIN.DATASET", "ucf101", "TEST.DATASET", "ucf101", "DATA.PATH_TO_DATA_DIR", root,
                           "MODEL.NUM_CLASSES", "1", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "2",
                           "DATA.TARGET_FPS", str(FPS), "DATA.TRAIN_CROP_SIZE", "32",
                           "DATA.TRAIN_JITTER_SCALES", "[40, 80]"] + list(extra))


def _frames(clip):
    """Source frame index of each clip frame (blue channel / 5; the loader's clips are uint8 pixels)."""
    return [int(round(v)) for v in (clip[2].double().mean((1, 2)) / 5).tolist()]


def _line(values):
    """Least-squares slope and intercept of values over positions 0..n-1."""
    slope, intercept = np.polyfit(np.arange(len(values)), np.asarray(values, dtype=np.float64), 1)
    return slope, intercept


def _geometry(clip):
    """(short side, top, left, flipped) of a training crop, from its coordinate values. A source
    pixel i covers [i, i+1); scaled by r = source / scaled size, scaled pixel j holds (j + 0.5) r - 0.5."""
    pixels = clip.double()
    col_slope, col_at0 = _line(pixels[0].mean((0, 1)))  # red along the crop's columns
    row_slope, row_at0 = _line(pixels[1].mean((0, 2)))  # green along its rows
    r = row_slope  # = H / short side (the short side is the height)
    short = int(round(H / r))
    top = (row_at0 + 0.5) / r - 0.5
    flipped = col_slope < 0
    first_col = col_at0 + 31 * col_slope if flipped else col_at0  # value of the crop's leftmost column
    left = (first_col + 0.5) / abs(col_slope) - 0.5
    return short, top, left, flipped


def test_training_crops_scales_and_flips_cover_their_ranges(coordinate_root):
    ds = build_dataset(_cfg(coordinate_root), "train")
    samples = [ds[(0, ds.shape, seed)] for seed in range(200)]
    geometry = [_geometry(s["clip"]) for s in samples]
    shorts = [g[0] for g in geometry]
    assert min(shorts) >= 40 and max(shorts) <= 80
    assert min(shorts) <= 41 and max(shorts) >= 79 and len(set(shorts)) >= 30  # the whole jitter range
    tops, lefts = [], []
    for short, top, left, _ in geometry:
        width = round(W * short / H)
        assert -0.6 <= top <= short - 32 + 0.6 and -0.6 <= left <= width - 32 + 0.6
        tops.append(top / max(short - 32, 1))
        lefts.append(left / max(width - 32, 1))
    for rel in (tops, lefts):  # uniform over the whole allowed range, not a fixed or centred crop
        assert min(rel) < 0.05 and max(rel) > 0.95 and 0.4 < np.mean(rel) < 0.6
    flips = sum(g[3] for g in geometry)
    assert 70 <= flips <= 130  # p = 1/2: mean 100, sd 7
    # clip positions: 4 frames every 2 of 40, start uniform in [0, 32]
    starts = [_frames(s["clip"])[0] for s in samples]
    assert all(_frames(s["clip"]) == list(range(st, st + 8, 2)) for s, st in zip(samples, starts))
    assert min(starts) <= 1 and max(starts) >= 31
    # the same seed gives the same clip; no flips when they are off
    torch.testing.assert_close(ds[(0, ds.shape, 7)]["clip"], samples[7]["clip"], rtol=0, atol=0)
    still = build_dataset(_cfg(coordinate_root, "DATA.RANDOM_FLIP", "False"), "train")
    assert not any(_geometry(still[(0, still.shape, seed)]["clip"])[3] for seed in range(40))


def test_each_epoch_draws_new_augmentations_for_the_same_sample(coordinate_root, tmp_path):
    """Through the loader as training uses it: a one-video set puts the video at position 0 of every
    epoch, so only the epoch can vary its crop, scale, flip and start; replaying an epoch (a resumed
    run) gives that epoch's clip again."""
    from vidpool.data import build_loader

    root = tmp_path / "one"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "Coord").mkdir()
    os.symlink(os.path.join(coordinate_root, "Coord", "v_Coord_g01_c01.mkv"), root / "Coord" / "v_Coord_g01_c01.mkv")
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Coord\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("Coord/v_Coord_g01_c01.mkv 1\n")
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("Coord/v_Coord_g01_c01.mkv\n")
    loader = build_loader(_cfg(str(root), "DATA_LOADER.NUM_WORKERS", "0", "TRAIN.BATCH_SIZE", "1"), "train")

    def clip_of(epoch):
        loader.batch_sampler.set_epoch(epoch)
        clip = next(iter(loader))["clip"][0]
        short, top, left, flipped = _geometry(clip)
        return short, round(top), round(left), flipped, _frames(clip)[0]

    seen = [clip_of(epoch) for epoch in range(8)]
    assert len({s[:4] for s in seen}) >= 6, seen  # the same crop every epoch was the bug
    assert len({s[4] for s in seen}) >= 4, seen  # and the same start frame
    assert clip_of(3) == seen[3]


@pytest.mark.parametrize("target_fps,expected", [(10, [16, 18, 20, 22]), (20, [18, 19, 20, 21]),
                                                 (5, [12, 16, 20, 24])])
def test_target_fps_sets_the_frame_step(coordinate_root, target_fps, expected):
    """Validation clip of 4 frames at sampling rate 2 counted at TARGET_FPS, centred in 40 frames at
    10 fps: step 2 x 10 / target source frames, span 4 x step, start (40 - span) / 2."""
    ds = build_dataset(_cfg(coordinate_root, "DATA.TARGET_FPS", str(target_fps)), "val")
    assert _frames(ds[0]["clip"]) == expected


@pytest.mark.parametrize("mode,expected", [("repeat", [0, 2, 4, 5]), ("loop", [0, 2, 4, 0])])
def test_short_clips_mode(coordinate_root, mode, expected):
    """A 6-frame video and a clip spanning 8 frames: the index past the end repeats the last frame or
    wraps to the first."""
    for split in ("val", "train"):
        ds = build_dataset(_cfg(coordinate_root, "DATA.SHORT_CLIPS", mode), split)
        item = ds[1] if split == "val" else ds[(1, ds.shape, 0)]
        assert _frames(item["clip"]) == expected


def test_decord_takes_the_same_frames_and_pixels(coordinate_root, monkeypatch):
    from vidpool.data import decoding

    calls = []
    original = decoding._read_decord
    monkeypatch.setattr(decoding, "_read_decord", lambda *a: calls.append(a[0]) or original(*a))
    for split in ("val", "test", "train"):
        pyav = build_dataset(_cfg(coordinate_root), split)
        dec = build_dataset(_cfg(coordinate_root, "DATA.DECODER", "decord"), split)
        for i in range(2):
            a, b = (pyav[i], dec[i]) if split != "train" else (pyav[(i, pyav.shape, 3)], dec[(i, dec.shape, 3)])
            assert _frames(a["clip"]) == _frames(b["clip"])
            assert (a["clip"].double() - b["clip"].double()).abs().mean() < 1.5  # two scalers, the same picture
    assert len(calls) == 6


@pytest.mark.slow
def test_training_with_decord_end_to_end(synthetic_root, tmp_path, monkeypatch):
    from vidpool.data import decoding
    from vidpool.engine import train

    from ..engine.test_train import tiny_cfg

    calls = []
    original = decoding._read_decord
    monkeypatch.setattr(decoding, "_read_decord", lambda *a: calls.append(a[0]) or original(*a))
    stats = train(tiny_cfg(synthetic_root, tmp_path, "DATA.DECODER", "decord", "SOLVER.MAX_EPOCH", "1",
                           "TEST.ENABLE", "False", "TENSORBOARD.ENABLE", "False"))
    assert stats["skipped_videos"] == 0 and np.isfinite(stats["train_loss"])
    assert len(calls) == 24 + 5  # 6 batches of 4 training clips, then the 5 validation clips
    assert all(os.path.isfile(p) for p in calls)
