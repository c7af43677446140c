"""DATA.DECODER torchcodec against PyAV: the same frame indices and pixels within a stated tolerance
on the project's real clips and on a video whose pixels name their frame; the GPU path's CPU
fallback (counted), the config rules for DATA.DECODE_DEVICE, and the FFmpeg libraries make links."""
import glob
import logging
import os
import subprocess
import sys

import pytest
import torch

from vidpool.config import load_cfg
from vidpool.config.check import ConfigError, check_cfg
from vidpool.data import build_dataset, build_loader, decoding
from vidpool.data.decoding import decode_frames, probe, read_clip

from ..conftest import require_torchcodec
from .test_observed_clips import _cfg as coordinate_cfg
from .test_observed_clips import coordinate_root  # noqa: F401,F811 (the fixture)
from .test_observed_clips import _frames as frame_numbers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIPS = sorted(glob.glob(os.path.join(ROOT, "tests", "assets", "videos", "*")))
# Mean absolute difference per frame between the two decoders' RGB frames, in grey levels (0-255):
# both decode the same YUV frame, FFmpeg's RGB conversion differs in rounding (PyAV converts with
# swscale's defaults, torchcodec with its own settings), and scaling is swscale's area filter
# against torchvision's antialiased bilinear. Measured on these clips: at most 1.4 unscaled and
# 1.9 scaled; a wrong frame gives 3 or more on the calmest of them.
TOLERANCE = 2.5


@pytest.fixture(autouse=True)
def _torchcodec():
    require_torchcodec()


@pytest.mark.parametrize("path", CLIPS, ids=os.path.basename)
@pytest.mark.parametrize("short_side", [None, 128])
def test_frames_equal_pyavs_on_the_real_clips(path, short_side):
    n = probe(path).num_frames
    indices = [0, 1, n // 3, n // 2, n - 1, n + 5]  # the last one past the end: the last frame again
    a, info_a, _ = read_clip(path, lambda info: indices, "pyav", short_side, exact=short_side is not None)
    b, info_b, _ = read_clip(path, lambda info: indices, "torchcodec", short_side, exact=short_side is not None)
    assert info_a == info_b and b.dtype == torch.uint8 and a.shape == b.shape
    per_frame = (a.double() - b.double()).abs().mean((1, 2, 3))
    assert per_frame.max() <= TOLERANCE, per_frame.tolist()
    if short_side is None:  # each frame is the asked one: the nearest of all PyAV's frames
        every = decode_frames(path, list(range(n)))
        nearest = [int((every.double() - f.double()).abs().mean((1, 2, 3)).argmin()) for f in b]
        assert nearest == [min(i, n - 1) for i in indices]


def test_frame_indices_read_off_the_pixels(coordinate_root):
    """A lossless video whose blue channel is 5 x its frame number (40 frames, Matroska): any order,
    repeats, and indices past the end."""
    path = os.path.join(coordinate_root, "Coord", "v_Coord_g01_c01.mkv")
    indices = [7, 0, 3, 3, 39, 45, 20]
    clip = decode_frames(path, indices, "torchcodec")
    assert [int(round(float(f[..., 2].double().mean()) / 5)) for f in clip] == [7, 0, 3, 3, 39, 39, 20]
    assert torch.equal(clip, decode_frames(path, indices, "pyav"))  # lossless RGB: the same bytes


def test_datasets_and_loader_workers_make_pyavs_clips(coordinate_root):
    """Through build_dataset / build_loader with 2 forked workers, as a training config uses it: the
    same frames at the same crops as with PyAV."""
    for split in ("val", "train"):
        pyav = build_dataset(coordinate_cfg(coordinate_root), split)
        codec = build_dataset(coordinate_cfg(coordinate_root, "DATA.DECODER", "torchcodec"), split)
        for i in range(2):
            a, b = (pyav[i], codec[i]) if split != "train" else (pyav[(i, pyav.shape, 5)], codec[(i, codec.shape, 5)])
            assert frame_numbers(a["clip"]) == frame_numbers(b["clip"])
            assert (a["clip"].double() - b["clip"].double()).abs().mean() < TOLERANCE
    cfg = coordinate_cfg(coordinate_root, "DATA.DECODER", "torchcodec", "DATA_LOADER.NUM_WORKERS", "2",
                         "TRAIN.BATCH_SIZE", "1")
    batches = list(build_loader(cfg, "val"))
    want = [pyav_item["clip"] for pyav_item in (build_dataset(coordinate_cfg(coordinate_root), "val")[i]
                                                for i in range(2))]
    assert [frame_numbers(b["clip"][0]) for b in batches] == [frame_numbers(w) for w in want]


def test_a_video_the_gpu_decoder_rejects_is_decoded_on_the_cpu_and_counted(monkeypatch, caplog):
    """Emulated on the CPU: a 'cuda' decoder that fails to open (NVDEC lacks the codec), fails to
    decode, or decodes on the CPU itself and says so (torchcodec's cpu_fallback status). The clip is
    the CPU decoder's; each is counted per codec and the first is logged."""
    path = [c for c in CLIPS if c.endswith(".mp4")][0]
    real_open = decoding._torchcodec_open
    want = decode_frames(path, [0, 9, 30], "torchcodec", short_side=64, exact=True)

    class DecodeFails:
        def __init__(self, inner):
            self.inner, self.metadata = inner, inner.metadata

        def __len__(self):
            return len(self.inner)

        def get_frames_played_at(self, seconds):
            raise RuntimeError("NVDEC cannot decode this stream")

    class FellBack(DecodeFails):  # torchcodec's own fallback: decoded on the CPU, status says so
        cpu_fallback = "[NVDEC] Fallback status: Falling back due to: unsupported codec"

        def get_frames_played_at(self, seconds):
            return self.inner.get_frames_played_at(seconds)

    for how, fake in (("open", None), ("decode", DecodeFails), ("torchcodec's own", FellBack)):
        def fake_open(p, device, fake=fake):
            if device == "cuda":
                if fake is None:
                    raise RuntimeError("Unsupported codec for NVDEC")
                return fake(real_open(p, "cpu"))
            return real_open(p, device)

        moved = []  # no GPU here: record where the CPU-decoded frames are sent instead of sending them
        monkeypatch.setattr(decoding, "_on", lambda frames, device: moved.append(device) or frames)
        monkeypatch.setattr(decoding, "_torchcodec_open", fake_open)
        monkeypatch.setattr(decoding, "_FALLBACKS", {})
        with caplog.at_level(logging.WARNING, logger="vidpool.data"):
            got = decode_frames(path, [0, 9, 30], "torchcodec", short_side=64, exact=True, device="cuda")
            decode_frames(path, [1], "torchcodec", device="cuda")
        assert torch.equal(got, want), how
        assert decoding.cpu_fallbacks() == {"h264": 2}, how
        # the clips a CPU decoder made go to the GPU, where the batch's other clips are
        assert moved == (["cuda", "cuda"] if fake is not FellBack else []), how
        assert sum("1 h264 video(s) decoded on the CPU" in r.getMessage() for r in caplog.records) == 1, how
        caplog.clear()


def test_other_decoders_refuse_a_gpu():
    with pytest.raises(ValueError, match="DATA.DECODE_DEVICE cuda needs DATA.DECODER torchcodec"):
        decode_frames(CLIPS[0], [0], "pyav", device="cuda")


def test_config_rules_for_gpu_decoding(monkeypatch):
    def problems(*overrides):
        with pytest.raises(ConfigError) as e:
            check_cfg(load_cfg(None, list(overrides)))
        return str(e.value)

    text = problems("DATA.DECODE_DEVICE", "cuda", "DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "4")
    assert "set DATA.DECODER torchcodec (it is 'pyav')" in text
    assert "DEVICE cpu" in text and "forked loader worker cannot use CUDA" in text
    assert "DATA_LOADER.START_METHOD spawn" in text
    check_cfg(load_cfg(None, ["DATA.DECODER", "torchcodec", "DATA.DECODE_DEVICE", "cuda",
                              "DATA_LOADER.NUM_WORKERS", "4", "DATA_LOADER.START_METHOD", "spawn"]))
    check_cfg(load_cfg(None, ["DATA.DECODER", "torchcodec", "DATA.DECODE_DEVICE", "cuda",
                              "DATA_LOADER.NUM_WORKERS", "0"]))
    assert "DATA.DECODE_DEVICE 'gpu' is not one of: cpu, cuda" in problems("DATA.DECODE_DEVICE", "gpu")

    def unavailable():
        raise decoding.TorchcodecUnavailable("torchcodec cannot load FFmpeg's shared libraries")

    monkeypatch.setattr(decoding, "torchcodec_decoder_class", unavailable)
    assert "DATA.DECODER torchcodec: torchcodec cannot load FFmpeg" in problems("DATA.DECODER", "torchcodec")


def test_a_config_mistake_about_decoding_is_one_message_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vidpool", "train", "DATA.DECODE_DEVICE", "cuda",
                           "DATA.PATH_TO_DATA_DIR", str(tmp_path), "OUTPUT_DIR", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "DATA.DECODE_DEVICE cuda decodes with torchcodec" in done.stderr + done.stdout


def test_make_links_pyavs_ffmpeg_where_torchcodec_finds_it(tmp_path):
    """vidpool.data.ffmpeg_libs (what make install runs): with its folder on LD_LIBRARY_PATH a fresh
    Python loads torchcodec's FFmpeg core, without it (and no system FFmpeg) it cannot."""
    from vidpool.data.ffmpeg_libs import link

    import av

    folder = link(str(tmp_path / "libs"))
    major = av.library_versions["libavcodec"][0]
    target = os.path.realpath(os.path.join(folder, f"libavcodec.so.{major}"))
    assert os.path.dirname(target) == os.path.realpath(os.path.join(os.path.dirname(av.__file__), "..", "av.libs"))
    code = "import torchcodec; print(torchcodec.ffmpeg_major_version)"
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    with_libs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               env=dict(env, LD_LIBRARY_PATH=folder))
    assert with_libs.returncode == 0 and with_libs.stdout.split()[-1].isdigit(), with_libs.stderr[-2000:]
    if subprocess.run(["sh", "-c", "ldconfig -p | grep -q 'libavcodec[.]so[.]'"]).returncode != 0:  # no system FFmpeg
        without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert without.stdout.split()[-1] == "None", without.stdout
