#!/usr/bin/env python
"""Clips per second of the data path: decode + temporal sample + augment to 16 x 224 x 224.

    python tools/benchmark_data.py                 # the real clips in tests/assets/videos, 128 clips per setting
    python tools/benchmark_data.py --clips 100 --videos a.mp4 b.mp4
    python tools/benchmark_data.py --recipe demo   # the demo's 8 x 48² clips from 60 demo videos

Every setting makes training clips of the same recipe from the same videos: 16 frames every 4
frames at 30 fps (frame-rate aware), short side jittered in [256, 320], random 224 crop, flip,
normalisation. Settings:

- vidpool with PyAV and with decord (``VideoClipDataset`` in train mode: open the video once, choose
  the frames, decode only those at the jittered scale, transform), in the main process (0 workers;
  rounds alternating between the settings, median clips/s) and with 2 DataLoader workers;
- vidpool reading a decoded-frame cache (``DATA.FRAME_CACHE``, filled with PyAV in a temporary
  folder before the timing starts): the same sampling and transforms without decoding;
- vidpool with torchcodec (``DATA.DECODER torchcodec``) on the CPU when torchcodec can load FFmpeg,
  and with ``--decode-device cuda`` on the GPU (NVDEC; 0 workers only, in this process);
- pytorchvideo 0.1.5 ``EncodedVideo`` with its PyAV decoder: ``get_clip`` over the same time span
  (it decodes and converts every frame in the span), the 16 frames picked uniformly, then the same
  transform, likewise with 0 and 2 workers.

``--recipe demo`` makes the demo's training clips instead (8 frames every 7 at 30 fps, short side
in [48, 56], 48 crop, no flip) from the first 60 demo videos (data/demo/ucf101, ``make demo`` makes them).

Every setting is timed to the batch the training loop receives (``--batch`` clips, collated where
the clips are made: in the loader workers, or in this process with 0 workers). vidpool's clips are
uint8 there: ``model_input`` converts and normalises them on the device the model runs on, so that
work is the same for every worker count and is printed once, per clip on this CPU, beside the table
(pytorchvideo's clips get the same uint8 crops).

Targets, measured in this run: vidpool's PyAV path >= 1.5x pytorchvideo's clips/s (0 workers); the
frame cache with 2 workers >= 1.2x its own 0-worker clips/s.
"""
import argparse
import glob
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader, Dataset

from vidpool.data import ClipShape, VideoClipDataset, VideoRecord, probe
from vidpool.data.datasets.base import collate_clips
from vidpool.data.decoding import TorchcodecUnavailable, torchcodec_decoder_class
from vidpool.data.frame_cache import FrameCache
from vidpool.data.transforms import normalize, train_crop

HERE = os.path.dirname(os.path.abspath(__file__))
GPU = "vidpool torchcodec cuda"
RECIPES = {  # clip shape, random flip
    "real": (ClipShape(num_frames=16, sampling_rate=4, crop_size=224, jitter_scales=(256, 320)), True),
    "demo": (ClipShape(num_frames=8, sampling_rate=7, crop_size=48, jitter_scales=(48, 56)), False),
}
SHAPE, FLIP = RECIPES["real"]
MEAN, STD, TARGET_FPS = (0.45,) * 3, (0.225,) * 3, 30.0


class PytorchvideoClips(Dataset):
    """The same recipe through pytorchvideo's EncodedVideo (PyAV decoder)."""

    def __init__(self, paths, n):
        self.paths, self.n = paths, n
        self.durations = {p: probe(p).duration for p in paths}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        from pytorchvideo.data.encoded_video import EncodedVideo

        rng = random.Random(i)
        path = self.paths[i % len(self.paths)]
        span = SHAPE.num_frames * SHAPE.sampling_rate / TARGET_FPS
        start = rng.uniform(0, max(0.0, self.durations[path] - span))
        video = EncodedVideo.from_path(path, decoder="pyav", decode_audio=False)
        clip = video.get_clip(start, start + span)["video"]  # (C, T_all, H, W) float 0..255
        idx = torch.linspace(0, clip.shape[1] - 1, SHAPE.num_frames).round().long()
        frames = clip[:, idx].permute(1, 2, 3, 0).to(torch.uint8)  # (T, H, W, C)
        return train_crop(frames, SHAPE, rng, FLIP)  # uint8, as vidpool's clips


def _vidpool(paths, n, decoder, cache=None, device="cpu"):
    records = [VideoRecord(paths[i % len(paths)], 0, str(i)) for i in range(n)]
    return VideoClipDataset(records, ["x"], "train", SHAPE, decoder=decoder, decode_device=device,
                            target_fps=TARGET_FPS, flip=FLIP, frame_cache=cache)


def filled_cache(paths, folder):
    """A frame cache in ``folder`` holding every video of ``paths`` (stored at the recipe's largest scale)."""
    cache = FrameCache(folder, max(SHAPE.jitter_scales))
    start = time.perf_counter()
    # decoded in a loader worker: this process must not decode before the worker settings fork
    for _ in DataLoader(paths, batch_size=1, num_workers=1, collate_fn=lambda b: cache.frames(b[0])[2]):
        pass
    print(f"  frame cache filled in {time.perf_counter() - start:.1f} s ({len(paths)} videos)", file=sys.stderr)
    return cache


def collate(samples):
    """A batch as the training loop gets it: vidpool's ``collate_clips`` (uint8 clips), else stacked."""
    return collate_clips(samples) if isinstance(samples[0], dict) else torch.stack(samples)


def in_process_rates(datasets, rounds, batch):
    """Clips/s of each dataset in this process, in batches of ``batch``, medians over `rounds` rounds
    that alternate the datasets (so drift on a shared machine hits all of them)."""
    n = min(len(d) for d in datasets.values())
    per_round = max(batch, (n - batch) // rounds // batch * batch)
    for d in datasets.values():
        collate([d[n - 1 - i] for i in range(batch)])  # warm-up
    rates = {name: [] for name in datasets}
    for r in range(rounds):
        for name, d in datasets.items():
            start = time.perf_counter()
            for i in range(r * per_round, (r + 1) * per_round, batch):
                collate([d[j % n] for j in range(i, i + batch)])
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # GPU decoding and transforms run asynchronously
            rates[name].append(per_round / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


def loader_rate(dataset, workers, batch, warmup=2):
    """Clips/s through a DataLoader with `workers` processes and batches of `batch`, after a warm-up."""
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate, prefetch_factor=2)
    it = iter(loader)
    for _ in range(min(warmup * workers, len(loader) // 2)):  # at most half the batches
        next(it)
    start = time.perf_counter()
    count = sum(len(b["clip"] if isinstance(b, dict) else b) for b in it)
    return count / (time.perf_counter() - start)


def normalise_ms(batch):
    """Milliseconds per clip to normalise a uint8 batch of the recipe's clips on this CPU (what
    ``model_input`` does where the model runs; on a GPU, there)."""
    x = torch.randint(0, 256, (batch, 3, SHAPE.num_frames, SHAPE.crop_size, SHAPE.crop_size), dtype=torch.uint8)
    normalize(x, MEAN, STD)
    start = time.perf_counter()
    for _ in range(5):
        normalize(x, MEAN, STD)
    return (time.perf_counter() - start) / 5 / batch * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="real", help="clip recipe (see above)")
    ap.add_argument("--videos", nargs="+", help="videos to read (default: the clips in tests/assets/videos; demo: 60 demo videos)")
    ap.add_argument("--clips", type=int, default=128, help="clips per setting")
    ap.add_argument("--batch", type=int, default=8, help="clips per batch (the loader collates them in its workers)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds for the in-process settings")
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the main process")
    ap.add_argument("--decode-device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: also torchcodec decoding on the GPU (in this process: CUDA cannot start in a "
                         "forked worker), against the CPU settings")
    args = ap.parse_args(argv)
    global SHAPE, FLIP
    SHAPE, FLIP = RECIPES[args.recipe]
    if not args.videos:
        if args.recipe == "real":
            args.videos = sorted(glob.glob(os.path.join(HERE, "..", "tests", "assets", "videos", "*.*")))
        else:
            args.videos = sorted(glob.glob(os.path.join(HERE, "..", "data", "demo", "ucf101", "UCF-101", "*",
                                                        "*.avi")))[:60]
    if not args.videos:
        ap.error("no videos found; pass --videos" + (" or run make demo first" if args.recipe == "demo" else ""))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    workers = [int(w) for w in args.workers.split(",")]
    names = [os.path.basename(v) for v in args.videos]
    names = names if len(names) <= 5 else names[:3] + ["..."]
    print(f"{len(args.videos)} videos ({', '.join(names)}), {args.clips} clips per setting in batches of "
          f"{args.batch}, clip {SHAPE.num_frames}x{SHAPE.crop_size}², {args.threads} threads")
    results = {}
    folder = tempfile.mkdtemp(prefix="vidpool_frame_cache_")
    try:
        cache = filled_cache(args.videos, folder)
        settings = [("vidpool pyav", lambda: _vidpool(args.videos, args.clips, "pyav")),
                    ("vidpool decord", lambda: _vidpool(args.videos, args.clips, "decord")),
                    ("vidpool frame cache", lambda: _vidpool(args.videos, args.clips, "pyav", cache)),
                    ("pytorchvideo pyav", lambda: PytorchvideoClips(args.videos, args.clips))]
        try:
            torchcodec_decoder_class()
            settings.insert(2, ("vidpool torchcodec", lambda: _vidpool(args.videos, args.clips, "torchcodec")))
            if args.decode_device == "cuda":
                settings.insert(3, (GPU, lambda: _vidpool(args.videos, args.clips, "torchcodec", device="cuda")))
        except TorchcodecUnavailable as e:
            print(f"  vidpool torchcodec: not timed ({e})", file=sys.stderr)
            if args.decode_device == "cuda":
                ap.error(f"--decode-device cuda needs torchcodec: {e}")
        measure(settings, workers, args, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(settings, workers, results, args.batch)
    return 0


def measure(settings, workers, args, results):
    # settings with workers first: after pytorchvideo has decoded in this process, forked
    # DataLoader workers crash (segmentation fault), whichever decoder they use
    for w in sorted(workers, reverse=True):
        if w == 0:
            rates = in_process_rates({name: make() for name, make in settings}, args.rounds, args.batch)
            results.update({(name, 0): rate for name, rate in rates.items()})
        else:
            for name, make in settings:
                if name != GPU:  # a forked worker cannot start CUDA
                    results[name, w] = loader_rate(make(), w, args.batch)
        for name, _ in settings:
            if (name, w) in results:
                print(f"  {name:<19} {w} workers: {results[name, w]:6.2f} clips/s", file=sys.stderr, flush=True)


def report(settings, workers, results, batch):
    print("| pipeline | workers | clips/s | × pytorchvideo |")
    print("|---|---|---|---|")
    for w in workers:
        for name, _ in settings:
            if (name, w) in results:
                base = results["pytorchvideo pyav", w]
                print(f"| {name} | {w} | {results[name, w]:.2f} | {results[name, w] / base:.2f} |")
    if 0 in workers:
        ratio = results["vidpool pyav", 0] / results["pytorchvideo pyav", 0]
        print(f"Target vidpool pyav >= 1.5x pytorchvideo pyav (0 workers): {'MET' if ratio >= 1.5 else 'MISS'} "
              f"({ratio:.2f})")
        print(f"frame cache / decoding (vidpool pyav, 0 workers): "
              f"{results['vidpool frame cache', 0] / results['vidpool pyav', 0]:.2f}x the clips/s")
    print(f"normalising on this CPU (model_input, batches of {batch}): {normalise_ms(batch):.2f} ms per clip")
    if (GPU, 0) in results:
        cpu = max(((results[n, w], n, w) for (n, w) in results if n in ("vidpool pyav", "vidpool torchcodec")))
        print(f"GPU decoding (torchcodec on cuda, in the training process) / the best CPU decoding ({cpu[1]}, "
              f"{cpu[2]} workers): {results[GPU, 0] / cpu[0]:.2f}x the clips/s")
    if 0 in workers and 2 in workers:
        ratio = results["vidpool frame cache", 2] / results["vidpool frame cache", 0]
        print(f"Target vidpool frame cache with 2 workers >= 1.2x its 0-worker clips/s: "
              f"{'MET' if ratio >= 1.2 else 'MISS'} ({ratio:.2f})")


if __name__ == "__main__":
    sys.exit(main())
