"""A video zoo made here with PyAV: the containers, codecs, bit depths, chroma layouts, display
rotations and flips, sample aspect ratios and lengths people's videos have. Each must decode as a
player shows it (a test pattern whose displayed position is known), with every decoder, or be a
counted skip with its reason where this FFmpeg build cannot make or read it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vidpool.data import decode_frames, probe

from ..conftest import require_torchcodec
from .video_zoo import DISPLAY_H, DISPLAY_W, ZOO, displayed_pattern


def blocks_at(frame):
    """Centroids (row, column) of the red and the green block of a decoded frame."""
    f = frame.astype(int)
    red = (f[..., 0] > 150) & (f[..., 1] < 100)
    green = (f[..., 1] > 150) & (f[..., 0] < 100)
    return [tuple(np.argwhere(mask).mean(0)) if mask.any() else None for mask in (red, green)]


SKIPPED = {}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    made = {}
    here = os.path.dirname(os.path.abspath(__file__))
    for name, (container, ext, codec, pix_fmt, rotation, hflip, sar, frames) in ZOO.items():
        path = str(root / f"{name}.{ext}")
        code = (f"import sys; sys.path.insert(0, {here!r}); import video_zoo as z, json; "
                f"z.make({path!r}, *json.loads(sys.argv[1]))")
        args = json.dumps([container, codec, pix_fmt, rotation, hflip, [sar.numerator, sar.denominator] if sar else None,
                           frames])
        done = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, timeout=120)
        if done.returncode == 0 and os.path.isfile(path):
            made[name] = path
        else:  # this FFmpeg build lacks the encoder or the layout, or the encoder crashed
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            SKIPPED[name] = f"cannot make {codec}/{pix_fmt} in {container}: {why}"
    return made


@pytest.mark.parametrize("backend", ["pyav", "decord", "torchcodec"])
@pytest.mark.parametrize("name", list(ZOO))
def test_each_video_decodes_as_a_player_shows_it(zoo, name, backend):
    if name not in zoo:
        pytest.skip(SKIPPED[name])
    if backend == "torchcodec":
        require_torchcodec()
    frames = ZOO[name][-1]
    try:
        info = probe(zoo[name], backend)
        clip = decode_frames(zoo[name], [0, frames // 2, frames - 1, frames + 4], backend).numpy()
    except Exception as e:  # noqa: BLE001
        if backend == "decord" and name.startswith("av1"):
            pytest.skip(f"decord cannot read {name}: {e}")  # its FFmpeg has no AV1 decoder
        raise
    assert (info.width, info.height) == (DISPLAY_W, DISPLAY_H), name
    assert clip.shape == (4, DISPLAY_H, DISPLAY_W, 3), name
    want = blocks_at(displayed_pattern())
    for frame in clip:  # the last index is past the end: the last frame again
        got = blocks_at(frame)
        assert got[0] is not None and got[1] is not None, name
        for (r, c), (wr, wc) in zip(got, want):
            assert abs(r - wr) < 2 and abs(c - wc) < 2, (name, got, want)


def test_every_zoo_video_is_made_or_a_named_skip(zoo):
    assert len(zoo) + len(SKIPPED) == len(ZOO) and all(SKIPPED.values())
    assert len(zoo) >= 10, SKIPPED  # PyAV's wheels carry these encoders: most of the zoo is always made


@pytest.mark.parametrize("backend", ["pyav", "decord", "torchcodec"])
def test_variable_frame_rate_is_sampled_by_time(tmp_path, backend):
    """Index i is the frame shown at time i / fps, from the start of the video as after a seek: the
    frames written before a gap stand for the indices inside it (counting frames would not)."""
    from .video_zoo import VFR_TIMES_MS, make_vfr

    if backend == "torchcodec":
        require_torchcodec()
    path = str(tmp_path / "vfr.mp4")
    make_vfr(path)
    fps = probe(path, backend).fps
    for indices in ([0, 1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8]):
        clip = decode_frames(path, indices, backend).numpy()
        got = [int(round((f.astype(float).mean() - 10) / 20)) for f in clip]
        shown = [max(k for k, t in enumerate(VFR_TIMES_MS) if t <= 1000 * i / fps + 1) for i in indices]
        assert got == shown, (backend, fps, indices, got, shown)
