"""A synthetic action dataset: procedurally drawn moving objects whose class is in the motion.

Each video shows one object (disc, square, bar or triangle) over a textured background sprinkled
with small bright dots. Its class is what happens over time: moving left / right / up / down,
growing / shrinking, rotating clockwise / counterclockwise, appearing / vanishing. Classes come in
time-reversed pairs, so a single frame cannot tell them apart; a model has to use time.

``make_synthetic_dataset(root, ...)`` writes real H.264 MP4 files (PyAV, no audio) and the official
annotation formats of all three datasets vidpool reads, each with its folder layout, so the real
readers run on it (the video files are hard links, or copies where links are not possible):

- ``root/hacs``: ``HACS_clips_v1.1.1.csv`` (2-second windows, a few negative rows) and
  ``videos/<class with _>/v_<id>.mp4``
- ``root/kinetics``: ``train.csv``, ``validate.csv``, ``test.csv`` and
  ``videos/<split>/<class with _>/<id>_000000_00000S.mp4``
- ``root/ucf101``: ``ucfTrainTestlist/`` (classInd, train/test lists of splits 1-3, and
  ``vallist0{1,2,3}.txt``, vidpool's validation lists) and ``UCF-101/<Class>/v_<Class>_gGG_cCC.avi``
- ``root/classes.txt``: the class names in label order (for DATA.CLASS_NAMES_FILE)

The UCF-101 files are the same H.264 MP4 bytes under the official ``.avi`` names (FFmpeg reads a
file by its content, not its name). Every tenth video also gets a negative HACS row (label -1) over
its first 2 seconds, so the negatives option has something to skip or keep.

Videos are spread over 25 groups as in UCF-101; split k tests on groups 7k-6..7k and trains on the
rest. ``val_videos`` more videos (default a tenth as many) form groups 26-28, the validation split
of every layout, disjoint from every training and test split: choices (a schedule, a setting) are
made on them, reports on the test split. HACS and Kinetics use split 1: groups 8-25 train, groups
1-7 test (HACS "testing", Kinetics test.csv), groups 26-28 validate. The validation videos are drawn
after the others, so adding them leaves the training and test videos as they were.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

log = logging.getLogger("vidpool.data")

CLASSES = ["moving left", "moving right", "moving up", "moving down", "growing", "shrinking",
           "rotating clockwise", "rotating counterclockwise", "appearing", "vanishing"]
SHAPES = ("disc", "square", "bar", "triangle")
GROUPS = 25
VAL_GROUPS = range(26, 29)  # the validation videos' groups, outside every split's training and test groups


def camel(name: str) -> str:
    return "".join(w.capitalize() for w in name.split())


def held_out_groups(split_id: int) -> range:
    return range(7 * split_id - 6, 7 * split_id + 1)


@dataclass(frozen=True)
class VideoSpec:
    index: int
    label: int
    group: int
    clip: int
    seed: int


def _background(rng: np.random.Generator, h: int, w: int, clutter: float = 1.0) -> np.ndarray:
    """Gratings plus smooth noise in random colours (their contrast times ``clutter``), and a few small
    bright dots."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.zeros((h, w, 3), np.float32)
    for _ in range(3):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
        wave = np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        bg += wave[..., None] * rng.uniform(10, 35, 3).astype(np.float32)
    coarse = rng.normal(0, 1, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    noise = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:h, :w]
    bg = clutter * (bg + 12 * noise) + rng.uniform(60, 150, 3).astype(np.float32)
    for _ in range(int(rng.integers(6, 16))):  # small bright details, 1-2 pixels
        y, x, s = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2)), int(rng.integers(1, 3))
        bg[y:y + s, x:x + s] = 255
    return bg


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if shape == "disc":
        return u * u + v * v <= 1
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "bar":
        return (np.abs(u) <= 1) & (np.abs(v) <= 0.35)
    return (v >= -0.7) & (v <= 0.9) & (np.abs(u) <= 0.75 * (0.9 - v) / 1.6)  # triangle pointing up


def render_clip(label: int, seed: int, frames: int = 48, size: Tuple[int, int] = (120, 160),
                plain: bool = False, clutter: float = 1.0, motion: float = 1.0) -> np.ndarray:
    """uint8 (frames, H, W, 3) clip of class ``label`` (index into CLASSES), fully determined by ``seed``.
    ``plain`` draws the same object and motion over a uniform grey background (to measure the motion);
    ``clutter`` scales the contrast of the background texture (0: flat colour plus the bright dots);
    ``motion`` scales what tells the classes apart (the distance moved, the angle turned, the log of
    the growth, the fade's depth around half opacity) while the slight wandering every class has stays:
    below 1 the classes differ by finer motion, a harder task."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label must be in 0..{len(CLASSES) - 1}, got {label}")
    if clutter < 0:
        raise ValueError(f"clutter must be >= 0, got {clutter}")
    if not 0 < motion <= 1:
        raise ValueError(f"motion must be in (0, 1], got {motion}")
    rng = np.random.default_rng(seed)
    h, w = size
    bg = _background(rng, h, w, clutter)
    if plain:
        bg = np.full_like(bg, 128)
    name = CLASSES[label]
    # a disc has no visible orientation and a small square's turn is hard to see (90-degree symmetry):
    # rotation classes draw a bar or a triangle
    shape = SHAPES[int(rng.integers(2 if name.startswith("rotating") else 0, len(SHAPES)))]
    color = rng.uniform(0, 255, 3).astype(np.float32)
    if np.abs(color - bg.mean((0, 1))).max() < 60:  # keep the object visible against its background
        color = 255 - color
    r = rng.uniform(0.12, 0.18) * min(h, w)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    drift = rng.uniform(-0.15, 0.15, 2)  # slight wandering for every class
    theta0 = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.9, 1.6) * min(h, w) / frames * 0.6  # pixels per frame for the moving classes
    # half a turn to a full turn over the clip: 8 frames sampled across it turn by at most 45 degrees
    # per step, well below the 90 degrees at which a bar's (180-degree symmetric) turn direction
    # becomes ambiguous
    omega = rng.uniform(1.0, 2.0) * np.pi / frames  # radians per frame
    grow = rng.uniform(1.8, 2.6)
    speed, omega, grow = speed * motion, omega * motion, grow ** motion  # the same draws at any motion
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        s = t / max(frames - 1, 1)  # 0 -> 1 over the clip
        x = cx + drift[0] * t + (frames / 2 - t) * speed * (name == "moving left") \
            - (frames / 2 - t) * speed * (name == "moving right")
        y = cy + drift[1] * t + (frames / 2 - t) * speed * (name == "moving up") \
            - (frames / 2 - t) * speed * (name == "moving down")
        radius = r * (grow ** (s - 0.5) if name == "growing" else grow ** (0.5 - s) if name == "shrinking" else 1)
        angle = theta0 + omega * t * (name == "rotating clockwise") - omega * t * (name == "rotating counterclockwise")
        alpha = (min(1.0, max(0.0, 2 * s - 0.4)) if name == "appearing"
                 else min(1.0, max(0.0, 1.4 - 2 * s)) if name == "vanishing" else 1.0)
        if motion != 1 and name in ("appearing", "vanishing"):  # (at 1 the bytes stay those of earlier sets)
            alpha = 0.5 + motion * (alpha - 0.5)
        # image y points down, so a growing angle turns the object clockwise on screen
        du, dv = (xx - x) / radius, (yy - y) / radius
        u = du * math.cos(angle) + dv * math.sin(angle)
        v = -du * math.sin(angle) + dv * math.cos(angle)
        mask = _inside(shape, u, v)[..., None] * np.float32(alpha)
        out[t] = np.clip(bg * (1 - mask) + color * mask, 0, 255).astype(np.uint8)
    return out


def write_mp4(path: str, frames: np.ndarray, fps: int) -> None:
    """Encode uint8 (T, H, W, 3) frames (even H and W) as H.264 in MP4, no audio."""
    import av

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    with av.open(tmp, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # mbtree off: x264's macroblock tree reads memory it has not written on frames this small,
        # so the same frames were encoded differently from process to process (about 2 % of the
        # demo's videos, up to 30 levels apart after decoding) and the same seed made another set
        stream.options = {"crf": "20", "preset": "veryfast", "x264-params": "mbtree=0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)


def _make_one(args):
    spec, path, frames, fps, size, clutter, motion = args
    write_mp4(path, render_clip(spec.label, spec.seed, frames, size, clutter=clutter, motion=motion), fps)
    return spec.index


def _link(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


BROKEN_KINDS = ("missing", "empty", "text", "truncated", "audio")


def break_video(path: str, kind: str, good: str) -> None:
    """Replace the video at ``path`` (a link to a shared master file is unlinked, never written
    through) by a broken file of ``kind``: gone, 0 bytes, a text file, the first 400 bytes of the
    video ``good``, or a file with an audio stream only. For tests and the robustness benchmark."""
    import av

    if kind not in BROKEN_KINDS:
        raise ValueError(f"kind must be one of {BROKEN_KINDS}, got {kind!r}")
    if os.path.lexists(path):
        os.remove(path)
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "text":
        with open(path, "w") as f:
            f.write("this is not a video\n" * 40)
    elif kind == "truncated":
        with open(good, "rb") as f, open(path, "wb") as g:
            g.write(f.read()[:400])
    elif kind == "audio":
        with av.open(path, "w", format="matroska") as out:
            stream = out.add_stream("pcm_s16le", rate=8000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            frame.sample_rate = 8000
            for packet in list(stream.encode(frame)) + list(stream.encode()):
                out.mux(packet)


def _video_id(i: int) -> str:
    return f"syn{i:08d}"  # 11 characters, like a YouTube id


def make_synthetic_dataset(root: str, num_videos: int = 500, num_classes: int = 10, seed: int = 0,
                           frames: int = 48, fps: int = 16, size: Tuple[int, int] = (120, 160), workers: int = 2,
                           progress: bool = True, clutter: float = 1.0, val_videos: Optional[int] = None,
                           motion: float = 1.0) -> dict:
    """Write the dataset under ``root`` (see the module docstring); returns a summary dict.
    ``clutter`` scales the background texture's contrast (lower: an easier task), ``motion`` the
    motion that tells the classes apart (lower: a harder task; ``render_clip``); ``val_videos``
    validation videos come on top of ``num_videos`` (default ``max(num_classes, num_videos // 10)``)."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(CLASSES)}, got {num_classes}")
    if num_videos < num_classes:
        raise ValueError(f"num_videos ({num_videos}) must be at least num_classes ({num_classes})")
    if clutter < 0:
        raise ValueError(f"clutter must be >= 0, got {clutter}")
    if not 0 < motion <= 1:
        raise ValueError(f"motion must be in (0, 1], got {motion}")
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"frame size must be even (H.264 4:2:0), got {size}")
    classes = CLASSES[:num_classes]
    rng = np.random.default_rng(seed)
    specs, per_group = [], {}
    for i in range(num_videos):
        label, group = i % num_classes, int(rng.integers(1, GROUPS + 1))
        clip = per_group[(label, group)] = per_group.get((label, group), 0) + 1
        specs.append(VideoSpec(i, label, group, clip, int(rng.integers(0, 2 ** 31))))
    val_videos = max(num_classes, num_videos // 10) if val_videos is None else val_videos
    for i in range(num_videos, num_videos + val_videos):  # drawn after: the others stay as they were
        label, group = i % num_classes, int(rng.integers(VAL_GROUPS.start, VAL_GROUPS.stop))
        clip = per_group[(label, group)] = per_group.get((label, group), 0) + 1
        specs.append(VideoSpec(i, label, group, clip, int(rng.integers(0, 2 ** 31))))
    duration = frames / fps
    hacs_root = os.path.join(root, "hacs")
    master = {s.index: os.path.join(hacs_root, "videos", classes[s.label].replace(" ", "_"), f"v_{_video_id(s.index)}.mp4")
              for s in specs}
    start = time.time()
    jobs = [(s, master[s.index], frames, fps, size, clutter, motion) for s in specs]
    done = 0
    # spawned, not forked: a fork taken while decoder or encoder threads of this process hold a lock
    # (FFmpeg's, decord's) can leave the child's encoder waiting forever (seen in the test suite)
    import multiprocessing

    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in pool.map(_make_one, jobs, chunksize=8):
            done += 1
            if progress and (done % 50 == 0 or done == len(jobs)):
                print(f"\rsynthetic videos: {done}/{len(jobs)} ({time.time() - start:.0f} s)", end="",
                      file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    _write_hacs(hacs_root, specs, classes, duration)
    _write_kinetics(os.path.join(root, "kinetics"), specs, classes, master, duration)
    _write_ucf101(os.path.join(root, "ucf101"), specs, classes, master)
    return {"root": root, "videos": num_videos, "val_videos": val_videos, "classes": classes,
            "seconds": round(time.time() - start, 1)}


def _split_of(spec: VideoSpec) -> str:
    """HACS's subset name for split 1."""
    if spec.group in VAL_GROUPS:
        return "validation"
    return "testing" if spec.group in held_out_groups(1) else "training"


def _write_hacs(root: str, specs: List[VideoSpec], classes: List[str], duration: float) -> None:
    with open(os.path.join(root, "HACS_clips_v1.1.1.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["classname", "youtube_id", "subset", "start", "end", "label"])
        s0 = round(max(0.0, (duration - 2) / 2), 3)
        for spec in specs:
            out.writerow([classes[spec.label], _video_id(spec.index), _split_of(spec), s0, s0 + 2, 1])
            if spec.index % 10 == 0:  # a negative clip now and then, as in the real file
                out.writerow([classes[spec.label], _video_id(spec.index), _split_of(spec), 0, min(2, duration), -1])


def _write_kinetics(root: str, specs, classes, master, duration: float) -> None:
    end = int(math.ceil(duration))
    rows = {"train": [], "val": [], "test": []}
    for spec in specs:
        name = f"{_video_id(spec.index)}_{0:06d}_{end:06d}.mp4"
        split = {"training": "train", "validation": "val", "testing": "test"}[_split_of(spec)]
        _link(master[spec.index], os.path.join(root, "videos", split, classes[spec.label].replace(" ", "_"), name))
        rows[split].append([classes[spec.label], _video_id(spec.index), 0, end, split])
    for split, fname in (("train", "train.csv"), ("val", "validate.csv"), ("test", "test.csv")):
        with open(os.path.join(root, fname), "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            out.writerows(rows[split])


def _write_ucf101(root: str, specs, classes, master) -> None:
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    names = [camel(c) for c in classes]
    with open(os.path.join(lists, "classInd.txt"), "w") as f:
        f.writelines(f"{i + 1} {n}\n" for i, n in enumerate(names))
    paths = {}
    for spec in specs:
        n = names[spec.label]
        rel = f"{n}/v_{n}_g{spec.group:02d}_c{spec.clip:02d}.avi"
        paths[spec.index] = rel
        _link(master[spec.index], os.path.join(root, "UCF-101", rel))
    val = [s for s in specs if s.group in VAL_GROUPS]
    for k in (1, 2, 3):
        test = [s for s in specs if s.group in held_out_groups(k)]
        train = [s for s in specs if s.group not in held_out_groups(k) and s.group not in VAL_GROUPS]
        with open(os.path.join(lists, f"trainlist0{k}.txt"), "w") as f:
            f.writelines(f"{paths[s.index]} {s.label + 1}\n" for s in train)
        with open(os.path.join(lists, f"testlist0{k}.txt"), "w") as f:
            f.writelines(f"{paths[s.index]}\n" for s in test)
        with open(os.path.join(lists, f"vallist0{k}.txt"), "w") as f:
            f.writelines(f"{paths[s.index]}\n" for s in val)
