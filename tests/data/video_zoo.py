"""The video zoo's files, made with PyAV alone (no vidpool, no torch): a subprocess makes each, so
an encoder that crashes (libx265 with a display matrix aborts in this PyAV build) costs one file."""
from fractions import Fraction

import av
import numpy as np

DISPLAY_H, DISPLAY_W = 48, 64  # what a player shows (before any aspect stretch of the stored frame)


def displayed_pattern():
    """Red block in the top-left, green block in the top-right: all eight rotations and flips of it
    differ (a single corner block would not tell a transpose)."""
    img = np.full((DISPLAY_H, DISPLAY_W, 3), 40, np.uint8)
    img[4:20, 4:24] = (230, 30, 30)
    img[4:14, DISPLAY_W - 20:DISPLAY_W - 6] = (30, 220, 30)
    return img


def stored_frame(displayed, rotation, hflip):
    """What the file stores so that, by PyAV's documented convention (frames are turned ``rotation``
    degrees counter-clockwise, then mirrored), a player shows ``displayed``."""
    img = displayed[:, ::-1] if hflip else displayed
    return np.ascontiguousarray(np.rot90(img, k=-(rotation // 90)))


# name: (container format, extension, codec, pixel format, rotation, hflip, sample aspect, frames)
ZOO = {
    "h264_mp4": ("mp4", "mp4", "libx264", "yuv420p", 0, False, None, 12),
    "h264_rot90": ("mp4", "mp4", "libx264", "yuv420p", 90, False, None, 12),
    "h264_rot-90": ("mp4", "mp4", "libx264", "yuv420p", -90, False, None, 12),
    "h264_rot180": ("mp4", "mp4", "libx264", "yuv420p", 180, False, None, 12),
    "h264_hflip": ("mp4", "mp4", "libx264", "yuv420p", 0, True, None, 12),
    "h264_rot90_hflip": ("mp4", "mp4", "libx264", "yuv420p", 90, True, None, 12),
    "h264_10bit_mkv": ("matroska", "mkv", "libx264", "yuv420p10le", 0, False, None, 12),
    "h264_444": ("mp4", "mp4", "libx264", "yuv444p", 0, False, None, 12),
    "h264_mkv_rot-90": ("matroska", "mkv", "libx264", "yuv420p", -90, False, None, 12),
    "hevc_mkv": ("matroska", "mkv", "libx265", "yuv420p", 0, False, None, 12),
    "hevc_rot90": ("mp4", "mp4", "libx265", "yuv420p", 90, False, None, 12),  # crashes in some builds
    "vp9_webm_rot90": ("webm", "webm", "libvpx-vp9", "yuv420p", 90, False, None, 12),
    "hevc_10bit": ("mp4", "mp4", "libx265", "yuv420p10le", 0, False, None, 12),
    "vp9_webm": ("webm", "webm", "libvpx-vp9", "yuv420p", 0, False, None, 12),
    "vp9_444_webm": ("webm", "webm", "libvpx-vp9", "yuv444p", 0, False, None, 12),
    "av1_mp4": ("mp4", "mp4", "libsvtav1", "yuv420p", 0, False, None, 12),
    "mpeg4_avi": ("avi", "avi", "mpeg4", "yuv420p", 0, False, None, 12),
    "mjpeg_avi": ("avi", "avi", "mjpeg", "yuvj420p", 0, False, None, 12),
    "ffv1_mkv_444": ("matroska", "mkv", "ffv1", "yuv444p", 0, False, None, 12),
    "h264_sar4:3": ("mp4", "mp4", "libx264", "yuv420p", 0, False, Fraction(4, 3), 12),
    "h264_3_frames": ("mp4", "mp4", "libx264", "yuv420p", 0, False, None, 3),
}


def make(path, container, codec, pix_fmt, rotation, hflip, sar, frames):
    sar = Fraction(*sar) if sar else None
    displayed = displayed_pattern()
    stored = stored_frame(displayed, rotation, hflip)
    if sar:  # non-square pixels: the stored frame is narrower by the aspect, a player stretches it
        stored = np.ascontiguousarray(stored[:, np.round(np.arange(int(stored.shape[1] / sar)) * float(sar)).astype(int)])
    with av.open(path, "w", format=container) as out:
        stream = out.add_stream(codec, rate=10)
        stream.height, stream.width = stored.shape[:2]
        stream.pix_fmt = pix_fmt
        if codec == "libsvtav1":
            stream.options = {"preset": "12"}
        if sar:
            stream.codec_context.sample_aspect_ratio = sar
        if rotation or hflip:
            stream.set_display_rotation(rotation, hflip=hflip)
        for t in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


VFR_TIMES_MS = [0, 100, 200, 500, 600, 700, 800, 1200, 1300, 1400, 1500, 1900]  # gaps: a variable frame rate


def make_vfr(path):
    """H.264 in MP4 whose frames are shown at VFR_TIMES_MS; frame k is a flat gray of level 20 k + 10."""
    with av.open(path, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(VFR_TIMES_MS):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * k + 10, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
