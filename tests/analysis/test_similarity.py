"""Pooling similarity: protocol on synthetic inputs whose answers are known by construction."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpool.analysis import similarity

REPO = Path(__file__).resolve().parents[2]
VIDEOS = REPO / "tests" / "assets" / "videos"


def _dot_image():
    x = torch.zeros(3, 8, 8)
    x[:, 1, 1] = 1.0  # one bright pixel in the first 2x2 block
    return x


def test_single_dot_psnr_by_hand():
    x = _dot_image()
    # k=2: max fills the block with 1 (3 wrong pixels of 64), avg with 0.25
    for method, mse in [("max", 3 / 64), ("avg", (0.75 ** 2 + 3 * 0.25 ** 2) / 64)]:
        rec = similarity.reconstruct(x[None], method, 2, 2)[0]
        _, psnr = similarity.ssim_psnr(x, rec)
        assert psnr == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)


def test_ordering_known_by_construction():
    torch.manual_seed(0)
    # 1) images constant on the pooling blocks are restored exactly by any in-range method
    blocks = torch.rand(3, 4, 5).repeat_interleave(3, 1).repeat_interleave(3, 2)
    for method in ["avg", "max", "softpool", "mixed", "dpp_lite_sym", "stochastic", "s3pool"]:
        rec = similarity.reconstruct(blocks[None], method, 3, 2)[0]
        assert torch.allclose(rec, blocks, atol=1e-6), method
    # 2) the block mean is the least-squares constant of a block: avg has the best PSNR of all
    x = torch.rand(3, 12, 12) ** 3
    scores = {m: similarity.ssim_psnr(x, similarity.reconstruct(x[None], m, 2, 2)[0])[1]
              for m in ["avg", "max", "softpool", "lp", "dpp_lite_sym", "mixed"]}
    assert max(scores, key=scores.get) == "avg"
    # 3) SoftPool lies between avg and max, so on sparse bright details its PSNR is between theirs
    d = _dot_image()
    psnr = {m: similarity.ssim_psnr(d, similarity.reconstruct(d[None], m, 2, 2)[0])[1]
            for m in ["avg", "softpool", "max"]}
    assert psnr["avg"] > psnr["softpool"] > psnr["max"]


def test_evaluate_rows_and_table():
    samples = [similarity.Sample("dot", "image", _dot_image()),
               similarity.Sample("clip", "video", torch.rand(3, 4, 9, 10))]
    rows = similarity.evaluate(samples, ["avg", "max"], kernels=(2, 3))
    assert {r["dataset"] for r in rows} == {"images 2D", "videos 2D (per frame)", "videos 3D (spatio-temporal)"}
    assert len(rows) == 3 * 2 * 2 and all(0 <= r["ssim"] <= 1 for r in rows)
    table = similarity.markdown_table(rows)
    assert table.count("\n") == 3 and "| avg |" in table


def test_collect_skips_broken_files(tmp_path, caplog):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    img = (np.random.rand(6, 7, 3) * 255).astype(np.uint8)
    from PIL import Image
    Image.fromarray(img).save(tmp_path / "ok.png")
    samples = similarity.collect([str(tmp_path)])
    assert [s.name for s in samples] == ["ok.png"] and samples[0].data.shape == (3, 6, 7)
    assert "skipped 1 unreadable file" in caplog.text
    with pytest.raises(FileNotFoundError):
        similarity.collect([str(tmp_path / "missing")])


def test_tool_on_a_real_clip(tmp_path):
    out = subprocess.run([sys.executable, "-m", "vidpool", "similarity", str(VIDEOS / "apply_eye_makeup.avi"),
                          "--methods", "avg,max,softpool", "--kernels", "2", "--frames", "4",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for ext in ("md", "csv", "json"):
        assert (tmp_path / f"similarity.{ext}").stat().st_size > 0
    assert "| softpool |" in out.stdout
