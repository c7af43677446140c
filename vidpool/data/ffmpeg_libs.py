"""FFmpeg's shared libraries for torchcodec, from the copy PyAV ships.

torchcodec links against the system's FFmpeg (``libavcodec.so.62`` and friends, FFmpeg 4 to 8) and
finds it through the dynamic linker's search path. PyAV's wheels carry their own FFmpeg under
renamed files (``av.libs/libavcodec-<hash>.so.62...``). ``link()`` makes a folder (by default
``<environment>/ffmpeg-libs``) holding every library of ``av.libs`` plus links under the names
torchcodec asks for; put that folder on ``LD_LIBRARY_PATH`` before Python starts:

    export LD_LIBRARY_PATH=$(python -m vidpool.data.ffmpeg_libs):$LD_LIBRARY_PATH

``make install`` makes the folder and ``make test`` sets the variable. With FFmpeg installed on the
system (``apt install ffmpeg``, ``conda install ffmpeg``) none of this is needed.
"""
from __future__ import annotations

import glob
import os
import re
import sys
from typing import Optional

NAMES = ("avcodec", "avformat", "avutil", "avdevice", "avfilter", "swscale", "swresample")


def pyav_libs() -> str:
    """The folder of PyAV's bundled libraries."""
    import av

    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(av.__file__))), "av.libs")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"PyAV at {os.path.dirname(av.__file__)} has no bundled FFmpeg (no {folder}); "
                                "install FFmpeg's shared libraries on the system instead")
    return folder


def link(folder: Optional[str] = None) -> str:
    """Fill ``folder`` (default ``<sys.prefix>/ffmpeg-libs``) with links to PyAV's libraries, under
    their own names and under FFmpeg's (``libavcodec.so.<major>``); returns the folder."""
    folder = os.path.abspath(folder or os.path.join(sys.prefix, "ffmpeg-libs"))
    os.makedirs(folder, exist_ok=True)
    found = set()
    for path in sorted(glob.glob(os.path.join(pyav_libs(), "*.so*"))):
        name = os.path.basename(path)
        links = [name]  # its dependencies ask for it by this name ($ORIGIN is the link's folder)
        match = re.match(r"lib(\w+?)-[0-9a-f]+\.so\.(\d+)", name)
        if match and match.group(1) in NAMES:
            links.append(f"lib{match.group(1)}.so.{match.group(2)}")
            found.add(match.group(1))
        for link_name in links:
            target = os.path.join(folder, link_name)
            if os.path.islink(target) or os.path.exists(target):
                os.remove(target)
            os.symlink(path, target)
    missing = sorted(set(NAMES) - found)
    if missing:
        raise FileNotFoundError(f"PyAV's bundled FFmpeg lacks {', '.join('lib' + m for m in missing)}")
    return folder


if __name__ == "__main__":
    print(link(sys.argv[1] if len(sys.argv) > 1 else None))
