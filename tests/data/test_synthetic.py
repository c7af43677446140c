"""The synthetic generator: determinism, motion that matches the class name, real MP4 output."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from vidpool.data import decode_frames, probe
from vidpool.data.datasets.synthetic import CLASSES, make_synthetic_dataset, render_clip, write_mp4


def _object_mask(clip):
    """Pixels away from the per-pixel temporal median (the background where the object moves on)."""
    median = np.median(clip.astype(np.float32), axis=0)
    return np.abs(clip.astype(np.float32) - median).max(-1) > 40


def _centroids(clip):
    mask = _object_mask(clip)
    ys, xs = np.mgrid[0:clip.shape[1], 0:clip.shape[2]]
    return np.array([[xs[m].mean(), ys[m].mean()] for m in mask])


def test_render_is_deterministic_and_checked():
    a, b = render_clip(3, seed=11), render_clip(3, seed=11)
    assert a.dtype == np.uint8 and a.shape == (48, 120, 160, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, render_clip(3, seed=12))
    with pytest.raises(ValueError, match="label"):
        render_clip(10, seed=0)


@pytest.mark.parametrize("label,axis,sign", [(0, 0, -1), (1, 0, 1), (2, 1, -1), (3, 1, 1)])
def test_moving_classes_move_that_way(label, axis, sign):
    for seed in range(3):
        c = _centroids(render_clip(label, seed, frames=32, size=(96, 128)))
        travel = c[-4:, axis].mean() - c[:4, axis].mean()
        other = c[-4:, 1 - axis].mean() - c[:4, 1 - axis].mean()
        assert sign * travel > 10 and abs(other) < abs(travel) / 2, (seed, travel, other)


@pytest.mark.parametrize("label,grows", [(4, True), (5, False), (8, True), (9, False)])
def test_growing_shrinking_appearing_vanishing(label, grows):
    """Pixels that differ from the frame where the object is smallest / faint: more of them at the end
    for growing and appearing, fewer for shrinking and vanishing."""
    for seed in range(3):
        clip = render_clip(label, seed, frames=32, size=(96, 128)).astype(np.float32)
        ref = clip[0] if grows else clip[-1]
        early = (np.abs(clip[4] - ref).max(-1) > 40).sum()
        late = (np.abs(clip[-5] - ref).max(-1) > 40).sum()
        assert (late > early) if grows else (early > late), (seed, early, late)


def test_rotation_classes_turn_opposite_ways():
    """Orientation of the object's second moments (on the plain background), 4 frames apart;
    image y points down, so clockwise on screen is a growing angle. Seeds that draw a shape with
    nearly isotropic second moments are passed over.
    """
    ys, xs = np.mgrid[0:96, 0:128]

    def orientation(mask):
        x, y = xs[mask] - xs[mask].mean(), ys[mask] - ys[mask].mean()
        cxx, cyy, cxy = (x * x).mean(), (y * y).mean(), (x * y).mean()
        anisotropy = np.hypot(cxx - cyy, 2 * cxy) / (cxx + cyy)
        return 0.5 * np.arctan2(2 * cxy, cxx - cyy), anisotropy

    checked = 0
    for seed in range(12):
        turns = []
        for label in (6, 7):
            m = (render_clip(label, seed, frames=32, size=(96, 128), plain=True) != 128).any(-1)
            (a0, k0), (a1, k1) = orientation(m[0]), orientation(m[4])
            turns.append(np.angle(np.exp(2j * (a1 - a0))) / 2 if min(k0, k1) > 0.2 else None)
        if None in turns:
            continue
        assert turns[0] > 0.2 and turns[1] < -0.2, (seed, turns)
        # 8 frames sampled across the clip show the direction unambiguously, even for bars
        assert max(abs(t) for t in turns) < np.pi / 4 + 0.05, (seed, turns)
        checked += 1
    assert checked >= 4


def test_mp4_round_trip(tmp_path):
    clip = render_clip(6, seed=5, frames=20, size=(48, 64))
    path = str(tmp_path / "a.mp4")
    write_mp4(path, clip, fps=10)
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (20, 10.0, 64, 48)
    decoded = decode_frames(path, list(range(20))).numpy().astype(np.float32)
    assert np.abs(decoded - clip).mean() < 8  # H.264 at crf 20, 4:2:0


def test_generation_layout_and_errors(tmp_path):
    summary = make_synthetic_dataset(str(tmp_path), num_videos=12, num_classes=3, frames=8, fps=8, size=(32, 32),
                                     workers=1, progress=False)
    assert summary["classes"] == CLASSES[:3]
    mp4s = [f for _, _, files in os.walk(tmp_path / "hacs" / "videos") for f in files]
    avis = [f for _, _, files in os.walk(tmp_path / "ucf101" / "UCF-101") for f in files]
    assert summary["val_videos"] == 3 and len(mp4s) == len(avis) == 12 + 3  # a validation video per class
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic_dataset(str(tmp_path), num_classes=11)
    with pytest.raises(ValueError, match="even"):
        make_synthetic_dataset(str(tmp_path), size=(33, 32))


def test_validation_videos_are_apart_and_leave_the_others_as_they_were(tmp_path):
    """The validation split (groups 26-28) is disjoint from every training and test list, in all
    three layouts, and adding it changes no training or test video."""
    kw = dict(num_videos=20, num_classes=2, frames=8, fps=8, size=(32, 32), workers=1, progress=False)
    make_synthetic_dataset(str(tmp_path / "without"), val_videos=0, **kw)
    make_synthetic_dataset(str(tmp_path / "with"), val_videos=4, **kw)
    lists = {d: tmp_path / d / "ucf101" / "ucfTrainTestlist" for d in ("without", "with")}
    for k in (1, 2, 3):
        for name in (f"trainlist0{k}.txt", f"testlist0{k}.txt"):
            assert (lists["with"] / name).read_text() == (lists["without"] / name).read_text()
        val = (lists["with"] / f"vallist0{k}.txt").read_text().split()
        others = (lists["with"] / f"trainlist0{k}.txt").read_text() + (lists["with"] / f"testlist0{k}.txt").read_text()
        assert len(val) == 4 and all(int(v.split("_g")[1][:2]) in (26, 27, 28) and v not in others for v in val)
    assert (lists["without"] / "vallist01.txt").read_text() == ""
    for video in (lists["with"] / "trainlist01.txt").read_text().split()[::2][:3]:  # the same bytes
        a, b = (tmp_path / d / "ucf101" / "UCF-101" / video for d in ("without", "with"))
        assert a.read_bytes() == b.read_bytes()
    with open(tmp_path / "with" / "hacs" / "HACS_clips_v1.1.1.csv") as f:
        subsets = {}
        for row in csv.DictReader(f):
            if row["label"] == "1":
                subsets.setdefault(row["subset"], set()).add(row["youtube_id"])
    assert len(subsets["validation"]) == 4 and not subsets["validation"] & (subsets["training"] | subsets["testing"])
    kinetics = {split: {line.split(",")[1] for line in open(tmp_path / "with" / "kinetics" / f"{name}.csv")
                        .read().splitlines()[1:]} for split, name in (("train", "train"), ("val", "validate"),
                                                                        ("test", "test"))}
    assert kinetics["val"] == subsets["validation"] and kinetics["test"] == subsets["testing"]


def test_make_demo_data_tool(tmp_path):
    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make_demo_data.py")
    out = subprocess.run([sys.executable, tool, "--out", str(tmp_path / "d"), "--videos", "6", "--classes", "2",
                          "--frames", "8", "--size", "32x32", "--workers", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "wrote 6 videos of 2 classes" in out.stdout
    assert os.path.isfile(tmp_path / "d" / "ucf101" / "ucfTrainTestlist" / "classInd.txt")


def test_clutter_scales_the_background_texture():
    """clutter 0: the background is one flat colour plus the white dots; 1: a textured background."""
    obj = (render_clip(0, seed=4, frames=2, size=(48, 64), plain=True) != 128).any(-1)[0]
    flat = render_clip(0, seed=4, frames=2, size=(48, 64), clutter=0.0)[0][~obj]
    colours = {tuple(c) for c in flat}
    assert len(colours) == 2 and (255, 255, 255) in colours
    textured = render_clip(0, seed=4, frames=2, size=(48, 64))[0][~obj]
    assert len({tuple(c) for c in textured}) > 100
    with pytest.raises(ValueError, match="clutter"):
        render_clip(0, seed=4, clutter=-1.0)


ENCODE_120 = """
import hashlib, sys
from vidpool.data.datasets.synthetic import render_clip, write_mp4
for seed in range(120):
    path = sys.argv[1] + f"/{seed}.mp4"
    write_mp4(path, render_clip(seed % 10, 1000 + seed, 32, (48, 64), clutter=0.3), 16)
    print(hashlib.md5(open(path, "rb").read()).hexdigest())
"""


@pytest.mark.slow
def test_the_same_clips_give_the_same_bytes_in_every_process(tmp_path):
    """The demo set is made again on every machine, so a seed must give one data set. Two processes
    whose fresh memory holds different bytes (glibc's MALLOC_PERTURB_) encode the same 120 demo-sized
    clips: the files are identical (with x264's macroblock tree on, about 6 of them differed)."""
    digests = []
    for perturb in ("1", "254"):
        folder = tmp_path / perturb
        folder.mkdir()
        done = subprocess.run([sys.executable, "-c", ENCODE_120, str(folder)], capture_output=True, text=True,
                              env=dict(os.environ, MALLOC_PERTURB_=perturb))
        assert done.returncode == 0, done.stderr
        digests.append(done.stdout.split())
    assert len(digests[0]) == 120
    assert [i for i, (a, b) in enumerate(zip(*digests)) if a != b] == []


def test_motion_scales_what_tells_the_classes_apart():
    """On the plain background: the distance a moving object travels beyond the common wandering,
    the log of a growing object's area ratio and a fade's opacity range all scale with ``motion``."""
    ys, xs = np.mgrid[0:96, 0:128]

    def mask(label, seed, m):
        return (render_clip(label, seed, frames=32, size=(96, 128), plain=True, motion=m) != 128).any(-1)

    for seed in range(3):
        travel = {m: xs[mask(0, seed, m)[-1]].mean() - xs[mask(0, seed, m)[0]].mean() for m in (1.0, 0.5, 0.25)}
        # x(t) = wander(t) - motion * speed * t: travel is linear in motion, the left move halves
        assert travel[1.0] < travel[0.5] < travel[0.25]
        assert travel[0.5] - travel[1.0] == pytest.approx(2 * (travel[0.25] - travel[0.5]), abs=1.0)
        area = {m: mask(4, seed, m).sum((1, 2)) for m in (1.0, 0.5)}  # growing: area ~ grow ** (2 * motion * s)
        assert np.log(area[0.5][-1] / area[0.5][0]) == pytest.approx(0.5 * np.log(area[1.0][-1] / area[1.0][0]),
                                                                     rel=0.08)
        full = render_clip(8, seed, frames=32, size=(96, 128), plain=True).astype(np.float32)  # appearing
        half = render_clip(8, seed, frames=32, size=(96, 128), plain=True, motion=0.5).astype(np.float32)
        inside = (full[-1] != 128).any(-1) & (np.abs(full[-1] - 128).max(-1) > 40)
        colour = full[-1][inside]  # opacity 1 at the end of the full fade
        for frame, alpha in ((0, 0.25), (-1, 0.75)):  # the half fade: 0.5 -+ 0.25
            seen = ((half[frame][inside] - 128) / (colour - 128))[np.abs(colour - 128) > 40]
            assert np.median(seen) == pytest.approx(alpha, abs=0.02)
    with pytest.raises(ValueError, match="motion"):
        render_clip(0, 0, motion=0)
