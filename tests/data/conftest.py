import os

import pytest

VIDEOS = os.path.join(os.path.dirname(__file__), "..", "assets", "videos")
# (file, fps, frames, displayed width, height) as tests/assets/NOTICE.md lists them: the two Kinetics
# clips store 340x256 frames with non-square pixels (display aspect 5:3 and 16:9)
REAL_CLIPS = [("arm_wrestling.mp4", 28, 280, 427, 256), ("cleaning_pool.mp4", 30, 300, 455, 256),
              ("apply_eye_makeup.avi", 25, 164, 320, 240)]


def real_clip(name):
    path = os.path.join(VIDEOS, name)
    if not os.path.isfile(path):
        pytest.fail(f"test clip missing: {path} (tests/assets/videos is part of the repository)")
    return path
