import os

import pytest

from vidpool.data.datasets.synthetic import make_synthetic_dataset

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
VIDEOS = os.path.join(SHARED, "videos")
# (file, fps, frames, width, height) as ../shared/data/README.md lists them
REAL_CLIPS = [("arm_wrestling.mp4", 28, 280, 340, 256), ("cleaning_pool.mp4", 30, 300, 340, 256),
              ("apply_eye_makeup.avi", 25, 164, 320, 240)]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic set in all three layouts: 40 videos, 5 classes, 24 frames at 8 fps (3 s), 48x64."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    make_synthetic_dataset(root, num_videos=40, num_classes=5, seed=3, frames=24, fps=8, size=(48, 64), workers=1,
                           progress=False)
    return root


def real_clip(name):
    path = os.path.join(VIDEOS, name)
    if not os.path.isfile(path):
        pytest.fail(f"shared clip missing: {path} (the project expects ../shared/data beside it)")
    return path
