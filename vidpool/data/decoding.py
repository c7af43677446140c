"""Video decoding: PyAV (default), decord or torchcodec behind one function, decoding only the frames
a clip needs.

``probe(path)`` reads the container's metadata (no decoding). ``decode_frames(path, indices)`` returns
the frames at the given indices (sorted or not, repeats allowed) as a uint8 tensor (T, H, W, 3):

- PyAV seeks to the keyframe before the first wanted frame and decodes forward only to the last
  one; frames in between are decoded (inter-frame codecs need them) but never converted to RGB.
- Frame index i is the frame shown at time i / fps, read off the frames' timestamps
  (i = (pts - start) x fps), whether the clip starts at the first frame or after a seek, so
  variable-frame-rate videos are sampled evenly in time (for constant-rate videos this is the i-th
  frame in presentation order). AVI files (no real timestamps) and timestamps that go backwards:
  frames are counted from the beginning; a seek that lands past the first wanted frame: decoding
  starts again at the beginning. decord's frame numbers are mapped through its frame timestamps
  the same way.
- After a seek, frames that are neither wanted nor referenced by other frames are not decoded
  (skip_frame NONREF per packet), which skips most B-frames of a clip's span.
- ``short_side``: when the video's short side is more than 1.25x that (or always, with ``exact``),
  frames are scaled in the decoder (swscale in PyAV, in the same pass as the RGB conversion;
  decord's own resize), before any tensor is made. Training draws its scale jitter first and
  decodes straight to that size.
- Indices past the last decodable frame repeat the last frame (stream frame counts are estimates).
- Only the first video stream is read: silent videos and audio streams are fine.
- Threads: inside a DataLoader worker PyAV decodes and scales with one thread (the workers are the
  parallelism; FFmpeg's automatic threading starts a pool per opened video and per converted
  frame, which costs more than decoding a small clip); in the main process it lets FFmpeg choose.
  One swscale context serves all frames of a clip.

- Frames come out as a player shows them: a display matrix (phone videos store their frames
  sideways and say how to turn them; flips too) is applied to the decoded frames, and anamorphic
  videos (sample aspect ratio other than 1) are scaled to their display aspect in the same swscale
  pass as the RGB conversion. ``VideoInfo.width`` / ``height`` are the displayed size.

- torchcodec (``backend="torchcodec"``, ``device="cpu"`` or ``"cuda"``: NVDEC) reads the same
  indices as PyAV: the video's frame rate, frame count, display matrix and aspect come from PyAV's
  header read (cached per process), index i is the frame played at time (i + 0.01) / fps (AVI: the
  i-th frame), and frames are turned and scaled to the displayed size after decoding (antialiased
  bilinear, on the decoding device). Videos whose codec NVDEC lacks (AV1 on older GPUs, MPEG-4
  part 2, VP8, FFV1, ...) are decoded on the CPU instead (by torchcodec itself, which says so in
  its ``cpu_fallback`` status, or here when the GPU decoder fails), counted per codec
  (``cpu_fallbacks()``) and logged at the first, 10th, 100th, ... of each codec. torchcodec needs FFmpeg's shared
  libraries (4 to 8); ``python -m vidpool.data.ffmpeg_libs`` links the ones PyAV ships (see there).

Every failure (missing file, not a video, no decodable frame) raises ``DecodeError`` naming the file.
"""
from __future__ import annotations

import bisect
import functools
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

BACKENDS = ("pyav", "decord", "torchcodec")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Orientation:
    """How stored frames become displayed ones: a transpose (quarter turns), then row / column flips."""
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @staticmethod
    def from_display_matrix(matrix: Sequence[int]) -> "Orientation":
        """From FFmpeg's 3x3 display matrix (16.16 fixed point, row-major [a b u; c d v; x y w]): a
        stored pixel (p, q) is shown at (a p + c q, b p + d q), up to an offset. Angles that are not
        quarter turns are taken to the nearest one."""
        a, b, c, d = (int(matrix[i]) for i in (0, 1, 3, 4))
        if abs(a) + abs(d) >= abs(b) + abs(c):
            return Orientation(False, d < 0, a < 0)
        return Orientation(True, b < 0, c < 0)

    def size(self, width: int, height: int) -> Tuple[int, int]:
        """The displayed (width, height) of stored frames of that size."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, C) stored frames as displayed."""
        if self.transpose:
            frames = frames.transpose(0, 2, 1, 3)
        if self.flip_rows:
            frames = frames[:, ::-1]
        if self.flip_cols:
            frames = frames[:, :, ::-1]
        return frames


UPRIGHT = Orientation()


def _frame_orientation(frame) -> Orientation:
    """The display matrix a decoded PyAV frame carries (none: as stored)."""
    for data in getattr(frame, "side_data", ()) or ():
        if str(getattr(data, "type", "")).endswith("DISPLAYMATRIX"):
            values = np.frombuffer(bytes(data), dtype=np.int32)
            if values.size >= 9:
                return Orientation.from_display_matrix(values)
    return UPRIGHT


def _sar_width(width: int, height: int, sar) -> int:
    """The stored frame's width at its display aspect (sample aspect ratio ``sar``; None or 0: square)."""
    if not sar or float(sar) <= 0 or abs(float(sar) - 1) < 1e-6:
        return width
    return max(1, int(round(width * float(sar))))


class DecodeError(RuntimeError):
    """A video could not be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    num_frames: int  # from the container's frame count, else duration x fps (an estimate either way)
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown video decoder {backend!r}; choose one of {BACKENDS} (config DATA.DECODER)")


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise DecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")


def scaled_size(width: int, height: int, short_side: Optional[int], exact: bool = False) -> Tuple[int, int]:
    """(width, height) with the short side brought to ``short_side``: always with ``exact``, else only
    when the frame is more than 1.25x larger. The aspect ratio is kept to rounding."""
    if not short_side or min(width, height) == short_side or (not exact and min(width, height) <= 1.25 * short_side):
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


# ----------------------------------------------------------------------------------------- PyAV
def _open_pyav(path: str):
    import av

    _check_file(path)
    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise DecodeError(f"{path}: cannot open ({getattr(e, 'strerror', None) or e})") from None
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{path}: no video stream")
    return container, container.streams.video[0]


def _pyav_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise DecodeError("stream without a frame rate")
    return float(rate)


def _pyav_info(path: str, container, stream) -> VideoInfo:
    try:
        fps = _pyav_fps(stream)
    except DecodeError:
        raise DecodeError(f"{path}: video stream without a frame rate") from None
    n = stream.frames
    if not n:
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1e6  # container durations are in microseconds
        else:
            seconds = 0.0
        n = int(seconds * fps)
    ctx = stream.codec_context
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    return VideoInfo(fps, int(n), _sar_width(int(ctx.width), int(ctx.height), sar), int(ctx.height))


def _probe_pyav(path: str) -> VideoInfo:
    info, orientation, _ = _geometry(path)
    return _displayed(info, orientation)


def _displayed(info: VideoInfo, orientation: Orientation) -> VideoInfo:
    return VideoInfo(info.fps, info.num_frames, *orientation.size(info.width, info.height))


_GEOMETRY: dict = {}


def _geometry(path: str) -> Tuple[VideoInfo, Orientation, Tuple[int, int]]:
    """The stream's info at its display aspect (stored orientation), its display orientation, which
    only a decoded frame carries, and the stored frame size: the first frame is decoded once per file
    (cached per process)."""
    import av

    st = os.stat(path) if os.path.isfile(path) else None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns) if st else None
    if key in _GEOMETRY:
        return _GEOMETRY[key]
    container, stream = _open_pyav(path)
    with container:
        info = _pyav_info(path, container, stream)
        stored = int(stream.codec_context.width), int(stream.codec_context.height)
        orientation = UPRIGHT
        try:
            for frame in container.decode(stream):
                orientation = _frame_orientation(frame)
                break
        except (av.FFmpegError, EOFError):
            pass  # an undecodable start: reading a clip will say so
    if len(_GEOMETRY) > 4096:
        _GEOMETRY.clear()
    _GEOMETRY[key] = (info, orientation, stored)
    return info, orientation, stored


class _Converter:
    """Frame -> RGB array at a given size through one reused swscale context (a new context per
    frame, as ``VideoFrame.to_ndarray(width=...)`` makes, costs more than the conversion itself for
    small frames); ``single_thread``: scale with one thread (PyAV versions without the ``threads``
    argument use their default)."""

    threads_supported: Optional[bool] = None

    def __init__(self, single_thread: bool):
        from av.video.reformatter import VideoReformatter

        self.reformatter, self.single_thread = VideoReformatter(), single_thread

    def __call__(self, frame, width: int, height: int, interpolation: str) -> np.ndarray:
        args = dict(width=width, height=height, format="rgb24", interpolation=interpolation)
        if self.single_thread and _Converter.threads_supported is not False:
            try:
                out = self.reformatter.reformat(frame, threads=1, **args)
                _Converter.threads_supported = True
                return out.to_ndarray()
            except TypeError:
                _Converter.threads_supported = False
        return self.reformatter.reformat(frame, **args).to_ndarray()


class _UnorderedTimestamps(Exception):
    """Frame timestamps that go backwards (e.g. AVI files with packed B-frames)."""


def _pyav_collect(path: str, container, stream, info: VideoInfo, wanted: Sequence[int], seek: bool,
                  size: Tuple[int, int], by_time: Optional[bool] = None):
    """{frame index: RGB array} for the decoded frames that are the latest at or before a wanted
    index, the index of the first frame decoded (None: nothing decoded) and the frames' display
    orientation. With ``seek`` decoding starts at the keyframe before the first wanted frame, else at
    the beginning. ``by_time`` (default: ``seek``): frames are indexed by timestamp (index i is the
    frame shown at time i / fps, so variable-frame-rate videos are sampled evenly in time), else
    counted in presentation order."""
    import av

    first, last = wanted[0], wanted[-1]
    by_time = seek if by_time is None else by_time
    got, first_seen, pending = {}, None, None
    in_worker = torch.utils.data.get_worker_info() is not None
    if in_worker:
        stream.codec_context.thread_count = 1
    else:
        stream.thread_type = "AUTO"
    rgb = _Converter(in_worker)
    fps = Fraction(info.fps).limit_denominator(100000)
    tb, start_pts = stream.time_base, stream.start_time or 0
    frames_per_tick = float(tb * fps)
    width, height = size
    # swscale converts to RGB and scales in one pass: area averaging when shrinking, else bilinear
    interpolation = "AREA" if width < info.width else "BILINEAR"
    orientation = []

    def keep(lo, hi, frame_idx, frame):
        """Convert `frame` if it is the one shown for some wanted index in [lo, hi)."""
        k = bisect.bisect_left(wanted, lo)
        if k < len(wanted) and wanted[k] < hi:
            got[frame_idx] = rgb(frame, width, height, interpolation)

    wanted_set = set(wanted)

    def decoded_frames():
        """Frames in presentation order. After a seek, packets of frames that are not wanted are
        decoded with skip_frame NONREF: frames other frames depend on are still decoded, the rest
        (B-frames, usually most of a clip's span) are skipped. That needs the packets' timestamps
        to fall on frame indices (constant frame rate); otherwise every frame is decoded."""
        ctx, skipping = stream.codec_context, seek
        for packet in container.demux(stream):
            if skipping and packet.pts is not None:
                x = (packet.pts - start_pts) * frames_per_tick
                skipping = abs(x - round(x)) < 0.25
                ctx.skip_frame = "NONREF" if skipping and round(x) not in wanted_set else "DEFAULT"
            yield from packet.decode()

    try:
        if seek:
            container.seek(start_pts + int(first / fps / tb), stream=stream, backward=True, any_frame=False)
        for count, frame in enumerate(decoded_frames()):
            if by_time:
                if frame.pts is None:
                    raise _UnorderedTimestamps()
                # the first index whose time (index / fps) the frame is shown at: a frame shown from
                # t stands for the indices from ceil(t x fps) until the next frame's (the slack
                # absorbs the rounding of timestamps to the time base)
                idx = math.ceil((frame.pts - start_pts) * frames_per_tick - 0.01)
                if pending is not None and idx < pending[0]:
                    raise _UnorderedTimestamps()
                if pending is not None and idx == pending[0]:  # shown at no index time: replaced
                    pending = (idx, frame, pending[2])
                    continue
            else:
                idx = count
            if pending is not None:
                keep(pending[2], idx, pending[0], pending[1])
            if first_seen is None:
                first_seen = idx
                orientation.append(_frame_orientation(frame))
            if idx > last:
                pending = None
                break
            # the first decoded frame also stands for any wanted index before it
            pending = (idx, frame, idx if pending is not None else -1)
        if pending is not None:
            keep(pending[2], last + 1, pending[0], pending[1])
    except (av.FFmpegError, EOFError) as e:
        if not got:
            raise DecodeError(f"{path}: decoding failed ({e})") from None
        # a truncated file: keep what was decoded; later indices repeat the last good frame
    return got, first_seen, (orientation[0] if orientation else UPRIGHT)


def _read_pyav(path: str, choose, resize: Tuple[Optional[int], bool]):
    container, stream = _open_pyav(path)
    try:
        info = _pyav_info(path, container, stream)
        indices = _checked(choose(info))
        wanted = sorted(set(indices))
        size = scaled_size(info.width, info.height, *resize)
        got = None
        # AVI stores no presentation timestamps (FFmpeg guesses them, wrongly with packed
        # B-frames): count frames from the start instead of indexing them by time
        if "avi" not in container.format.name.split(","):
            seek = wanted[0] > 0
            try:
                got, first_seen, orientation = _pyav_collect(path, container, stream, info, wanted, seek, size, True)
                if seek and (first_seen is None or first_seen > wanted[0]):
                    got = None  # the seek overshot the first wanted frame
            except _UnorderedTimestamps:
                got = None
            if got is None:  # start again on a fresh container
                container.close()
                container, stream = _open_pyav(path)
        if got is None:
            got, _, orientation = _pyav_collect(path, container, stream, info, wanted, False, size)
    finally:
        container.close()
    if not got:
        raise DecodeError(f"{path}: no decodable frame at or after index {wanted[0]}")
    return orientation.apply(_assemble(got, indices)), _displayed(info, orientation), indices


def _assemble(got: dict, indices: Sequence[int]) -> np.ndarray:
    """Frames for `indices` from the decoded {index: frame}: an index without its own frame takes the
    nearest decoded frame before it (or the first one after, at the start)."""
    keys = np.array(sorted(got))
    pos = np.searchsorted(keys, np.asarray(indices), side="right") - 1
    pos = np.clip(pos, 0, len(keys) - 1)
    return np.stack([got[int(keys[p])] for p in pos])


# --------------------------------------------------------------------------------------- decord
def _decord_reader(path: str, width: int = -1, height: int = -1):
    import decord

    _check_file(path)
    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height)
    except decord.DECORDError as e:
        raise DecodeError(f"{path}: cannot open ({str(e).splitlines()[0]})") from None


# decord turns some display matrices itself and not others (in mp4 it applies quarter turns but
# mirrors the wrong axis; in Matroska and WebM it returns garbled 4-channel frames): videos with a
# display matrix are read with PyAV instead, whichever decoder is configured
_DECORD_FALLBACKS: set = set()


def _decord_geometry(path: str) -> Optional[Tuple[VideoInfo, Tuple[int, int]]]:
    """(info at the display aspect, stored frame size) of a video decord reads as shown, from PyAV's
    header (a frame read through decord first would move its decoder, and its next seek can land on
    the wrong frame: seen on AVI files); None for a video with a display matrix (logged once)."""
    info, orientation, stored = _geometry(path)
    if orientation == UPRIGHT:
        return info, stored
    if path not in _DECORD_FALLBACKS:
        _DECORD_FALLBACKS.add(path)
        import logging

        logging.getLogger("vidpool.data").info("%s has a display matrix (%s): decoded with PyAV, not decord", path,
                                               orientation)
    return None


def _probe_decord(path: str) -> VideoInfo:
    vr = _decord_reader(path)
    if len(vr) == 0:
        raise DecodeError(f"{path}: no frames")
    geometry = _decord_geometry(path)
    if geometry is None:
        return _probe_pyav(path)
    shown = geometry[0]  # decord does not stretch non-square pixels: the size it is asked for
    return VideoInfo(float(vr.get_avg_fps()), len(vr), shown.width, shown.height)


def _read_decord(path: str, choose, resize: Tuple[Optional[int], bool]):
    import decord

    _check_file(path)
    geometry = _decord_geometry(path)
    if geometry is None:
        return _read_pyav(path, choose, resize)
    shown, stored = geometry  # decord does not stretch non-square pixels: the size it is asked for
    width, height = shown.width, shown.height
    sw, sh = scaled_size(width, height, *resize)
    vr = _decord_reader(path, *((sw, sh) if (sw, sh) != stored else (-1, -1)))
    if len(vr) == 0:
        raise DecodeError(f"{path}: no frames")
    info = VideoInfo(float(vr.get_avg_fps()), len(vr), width, height)
    indices = _checked(choose(info))
    # fetch each frame once, in increasing order: decord's backward seeks can land on the wrong
    # frame (seen on AVI files); then put them in the asked order
    idx = _frames_shown(vr, indices, info.fps, path)
    unique = np.unique(idx)
    try:
        frames = vr.get_batch(unique.tolist()).asnumpy()
    except decord.DECORDError as e:
        if (sw, sh) == stored:
            raise DecodeError(f"{path}: decoding failed ({str(e).splitlines()[0]})") from None
        # decord's own scaler fails at some sizes (e.g. 64x48 -> 48x36: its frames come out 48x48
        # and the copy raises): decode at the stored size and scale here instead
        try:
            frames = _resized(_decord_reader(path).get_batch(unique.tolist()).asnumpy(), sw, sh)
        except decord.DECORDError as e:
            raise DecodeError(f"{path}: decoding failed ({str(e).splitlines()[0]})") from None
    return frames[np.searchsorted(unique, idx)], info, indices


def _frames_shown(vr, indices: Sequence[int], fps: float, path: str) -> np.ndarray:
    """decord's frame numbers for the indices: the frame shown at time index / fps, as PyAV indexes
    them (the identity on constant-rate videos; AVI files, whose timestamps are guesses, are counted)."""
    count = np.clip(np.asarray(indices, dtype=np.int64), 0, len(vr) - 1)
    if path.lower().endswith(".avi"):
        return count
    try:
        starts = np.asarray(vr.get_frame_timestamp(np.arange(len(vr))))[:, 0]
    except Exception:  # noqa: BLE001 (no timestamps: count frames)
        return count
    if len(starts) < 2 or np.any(np.diff(starts) <= 0):
        return count
    times = (np.asarray(indices, dtype=np.float64) + 0.01) / fps  # slack for timestamps rounded to the time base
    return np.clip(np.searchsorted(starts - starts[0], times, side="right") - 1, 0, len(vr) - 1)


def _resized(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames scaled to width x height (antialiased bilinear)."""
    from torchvision.transforms.v2 import functional as TF

    x = TF.resize(torch.from_numpy(frames).permute(0, 3, 1, 2), [height, width], antialias=True)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


# ----------------------------------------------------------------------------------- torchcodec
class TorchcodecUnavailable(RuntimeError):
    """torchcodec is not installed or cannot load FFmpeg's shared libraries; the message says what to do."""


_TORCHCODEC: dict = {}


def torchcodec_decoder_class():
    """torchcodec's ``VideoDecoder`` class, or ``TorchcodecUnavailable`` saying why it cannot be used."""
    if "class" not in _TORCHCODEC:
        try:
            import torchcodec
            from torchcodec.decoders import VideoDecoder
        except ImportError as e:
            raise TorchcodecUnavailable(f"torchcodec is not installed ({e}): pip install torchcodec") from None
        if getattr(torchcodec, "ffmpeg_major_version", None) is None:  # its FFmpeg-linked core did not load
            raise TorchcodecUnavailable(
                "torchcodec cannot load FFmpeg's shared libraries (libavcodec and friends, FFmpeg 4 to 8): install "
                "them (conda install ffmpeg, or your system's FFmpeg packages), or link the ones PyAV ships with "
                "`export LD_LIBRARY_PATH=$(python -m vidpool.data.ffmpeg_libs):$LD_LIBRARY_PATH` before starting "
                "Python (docs/data.md: torchcodec, and decoding on the GPU)")
        _TORCHCODEC["class"] = VideoDecoder
    return _TORCHCODEC["class"]


_FALLBACKS: dict = {}


def cpu_fallbacks() -> dict:
    """{codec: videos decoded on the CPU because NVDEC could not} in this process."""
    return dict(_FALLBACKS)


def _count_fallback(path: str, codec: str, error: Exception) -> None:
    n = _FALLBACKS[codec] = _FALLBACKS.get(codec, 0) + 1
    if n in (1, 10, 100, 1000, 10000) or n % 100000 == 0:
        import logging

        logging.getLogger("vidpool.data").warning(
            "%d %s video(s) decoded on the CPU: the GPU decoder cannot (e.g. %s: %s)", n, codec, path,
            " ".join(str(error).split())[:200])


def _torchcodec_open(path: str, device: str):
    VideoDecoder = torchcodec_decoder_class()
    threads = 1 if torch.utils.data.get_worker_info() is not None else 0  # 0: FFmpeg chooses
    return VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=threads, device=device,
                        seek_mode="exact")


def _read_torchcodec(path: str, choose, resize: Tuple[Optional[int], bool], device: str):
    _check_file(path)
    if path.lower().endswith(".avi"):
        # AVI stores no presentation timestamps and often a keyframe index that seeks land wrongly
        # on (packed B-frames): torchcodec's frame after a seek differs from the one decoding from
        # the start gives. PyAV counts frames from the start (see _read_pyav); AVI's usual codecs
        # (MPEG-4 part 2, MJPEG) are not NVDEC's either
        frames, info, indices = _read_pyav(path, choose, resize)
        if device != "cpu":
            _count_fallback(path, "AVI", RuntimeError("AVI files are read with PyAV"))
        return _on(torch.from_numpy(np.ascontiguousarray(frames)), device), info, indices
    info, orientation, stored = _geometry(path)  # PyAV's header: the same fps, count and geometry
    shown = _displayed(info, orientation)
    indices = _checked(choose(shown))
    try:
        decoder = _torchcodec_open(path, device)
    except TorchcodecUnavailable:
        raise
    except Exception as e:  # noqa: BLE001 - torchcodec raises RuntimeError/ValueError for unreadable input
        if device == "cpu":
            raise DecodeError(f"{path}: cannot open ({' '.join(str(e).split())[:300]})") from None
        _count_fallback(path, _codec_name(path), e)
        return _on_cpu_instead(path, indices, resize, device)
    meta = decoder.metadata
    count = len(decoder)
    if count <= 0:
        raise DecodeError(f"{path}: no frames")
    begin = float(meta.begin_stream_seconds or 0.0)
    end = float(meta.end_stream_seconds)
    times = [max(begin, (i + 0.01) / info.fps + begin) for i in indices]
    try:
        # times past the end take the last frame; when the last frames a scan counts do not decode
        # (a truncated file), the last one that does, a frame earlier per try
        for back in range(8):
            limit = max(begin, end - 1e-6 - back / info.fps)
            try:
                frames = decoder.get_frames_played_at([min(t, limit) for t in times]).data
                break
            except RuntimeError as e:
                if "no more frames" not in str(e) or back == 7:
                    raise
    except Exception as e:  # noqa: BLE001
        if device != "cpu":
            _count_fallback(path, _codec_name(path), e)
            return _on_cpu_instead(path, indices, resize, device)
        raise DecodeError(f"{path}: decoding failed ({' '.join(str(e).split())[:300]})") from None
    fell_back = getattr(decoder, "cpu_fallback", None) if device != "cpu" else None
    if fell_back:  # torchcodec decoded on the CPU itself (known once a frame is decoded) and uploaded
        _count_fallback(path, str(getattr(meta, "codec", None) or _codec_name(path)), RuntimeError(str(fell_back)))
    # torchcodec turns frames by the display matrix's rotation (a multiple of 90 degrees) but not its
    # mirroring: apply what is left of the orientation a player applies
    frames = _turned(frames, _residual(_rotation(getattr(meta, "rotation", None)), orientation))
    width, height = scaled_size(shown.width, shown.height, *resize)
    if (frames.shape[2], frames.shape[1]) != (width, height):
        from torchvision.transforms.v2 import functional as TF

        x = TF.resize(frames.permute(0, 3, 1, 2), [height, width], antialias=True)
        frames = x.permute(0, 2, 3, 1)
    return frames.contiguous(), shown, indices


def _on(frames: torch.Tensor, device: str) -> torch.Tensor:
    """Frames decoded on the CPU, moved to the decoding device the caller asked for (a batch's clips
    must all be on one device)."""
    return frames if device == "cpu" else frames.to(device)


def _on_cpu_instead(path: str, indices: List[int], resize, device: str):
    frames, info, indices = _read_torchcodec(path, lambda _: indices, resize, "cpu")
    return _on(frames, device), info, indices


_DIHEDRAL = tuple(Orientation(t, r, c) for t in (False, True) for r in (False, True) for c in (False, True))


def _rotation(degrees) -> Orientation:
    """The turn torchcodec applies for a display rotation of ``degrees`` (counter-clockwise)."""
    k = int(round(float(degrees or 0) / 90)) % 4
    return (UPRIGHT, Orientation(True, True, False), Orientation(False, True, True), Orientation(True, False, True))[k]


@functools.lru_cache(maxsize=None)  # 8 x 8 pairs; called once per clip read
def _residual(applied: Orientation, wanted: Orientation) -> Orientation:
    """The orientation that, applied after ``applied``, gives ``wanted``."""
    probe_frames = np.arange(6).reshape(1, 2, 3, 1)
    target = wanted.apply(probe_frames)
    after = applied.apply(probe_frames)
    for x in _DIHEDRAL:
        if x.apply(after).shape == target.shape and np.array_equal(x.apply(after), target):
            return x
    raise AssertionError("orientations form a group: a residual always exists")


def _turned(frames: torch.Tensor, orientation: Orientation) -> torch.Tensor:
    """(T, H, W, C) frames turned as ``Orientation.apply`` turns arrays (on any device)."""
    if orientation == UPRIGHT:
        return frames
    if orientation.transpose:
        frames = frames.transpose(1, 2)
    if orientation.flip_rows:
        frames = frames.flip(1)
    if orientation.flip_cols:
        frames = frames.flip(2)
    return frames


def _codec_name(path: str) -> str:
    import av

    try:
        with av.open(path) as container:
            return container.streams.video[0].codec_context.name
    except Exception:  # noqa: BLE001
        return "unknown codec"


# ------------------------------------------------------------------------------------------- API
def _checked(indices: Sequence[int]) -> List[int]:
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("no frame indices given")
    if min(indices) < 0:
        raise ValueError(f"negative frame index {min(indices)}")
    return indices


def probe(path: str, backend: str = "pyav") -> VideoInfo:
    """Frame rate, frame count and size of the first video stream of ``path``."""
    _check_backend(backend)
    return _probe_decord(path) if backend == "decord" else _probe_pyav(path)  # torchcodec: PyAV's header


def read_clip(path: str, choose: Callable[[VideoInfo], Sequence[int]], backend: str = "pyav",
              short_side: Optional[int] = None, exact: bool = False,
              device: str = "cpu") -> Tuple[torch.Tensor, VideoInfo, List[int]]:
    """Open ``path`` once, let ``choose(info)`` pick the frame indices, decode them: returns the uint8
    frames (T, H, W, 3), the video's info and the chosen indices. ``exact``: scale the short side to
    ``short_side`` whatever the frame size (else only when the frame is much larger). ``device``:
    where torchcodec decodes (``cuda``: the frames come back on the GPU); the other decoders take
    ``cpu`` only."""
    _check_backend(backend)
    if device not in DEVICES or (device != "cpu" and backend != "torchcodec"):
        raise ValueError(f"decoding device {device!r}: the {backend} decoder decodes on the CPU only "
                         "(DATA.DECODE_DEVICE cuda needs DATA.DECODER torchcodec)")
    if backend == "torchcodec":
        return _read_torchcodec(path, choose, (short_side, exact), device)
    frames, info, indices = (_read_pyav if backend == "pyav" else _read_decord)(path, choose, (short_side, exact))
    return torch.from_numpy(np.ascontiguousarray(frames)), info, indices


def decode_frames(path: str, indices: Sequence[int], backend: str = "pyav", short_side: Optional[int] = None,
                  exact: bool = False, device: str = "cpu") -> torch.Tensor:
    """uint8 tensor (len(indices), H, W, 3) of the frames at ``indices`` (see the module docstring)."""
    return read_clip(path, lambda info: indices, backend, short_side, exact, device)[0]
