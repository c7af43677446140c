"""tools/benchmark_data.py runs end to end on the project's clips and prints its table and targets."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_benchmark_data_prints_every_setting_and_both_targets():
    videos = sorted(glob.glob(os.path.join(ROOT, "tests", "assets", "videos", "*.mp4")))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark_data.py"), "--videos", *videos,
                           "--clips", "24", "--batch", "4", "--rounds", "2", "--workers", "0,2"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| vidpool")
            or line.startswith("| pytorchvideo")]
    settings = {(name.strip(), int(w)) for name, w, *_ in rows}
    names = {"vidpool pyav", "vidpool decord", "vidpool frame cache", "pytorchvideo pyav"}
    from vidpool.data.decoding import TorchcodecUnavailable, torchcodec_decoder_class

    try:
        torchcodec_decoder_class()
        names.add("vidpool torchcodec")
    except TorchcodecUnavailable:
        pass
    assert settings == {(n, w) for n in names for w in (0, 2)}
    assert all(float(rate) > 0 for _, _, rate, _ in rows)
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("Target vidpool frame cache with 2 workers >= 1.2x its 0-worker clips/s: ")
    assert any(line.startswith("Target vidpool pyav >= 1.5x pytorchvideo pyav (0 workers): ") for line in lines)
