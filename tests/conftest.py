"""Fixtures shared by the data and engine tests."""
import pytest

from vidpool.data.datasets.synthetic import make_synthetic_dataset


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic set in all three layouts: 40 videos, 5 classes, 24 frames at 8 fps (3 s), 48x64."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    make_synthetic_dataset(root, num_videos=40, num_classes=5, seed=3, frames=24, fps=8, size=(48, 64), workers=1,
                           progress=False)
    return root


def require_torchcodec():
    """Skip a torchcodec test where torchcodec cannot load FFmpeg (a bare `pytest` without the
    LD_LIBRARY_PATH `make test` sets); under `make test` (VIDPOOL_REQUIRE_TORCHCODEC=1, so CI) fail instead."""
    import os

    from vidpool.data.decoding import TorchcodecUnavailable, torchcodec_decoder_class

    try:
        torchcodec_decoder_class()
    except TorchcodecUnavailable as e:
        if os.environ.get("VIDPOOL_REQUIRE_TORCHCODEC") == "1":
            pytest.fail(f"torchcodec is required here (VIDPOOL_REQUIRE_TORCHCODEC=1): {e}")
        pytest.skip(f"torchcodec unavailable: {e}")


@pytest.fixture
def torchcodec_ready():
    require_torchcodec()
