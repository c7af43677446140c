"""tools/torch_pair.py: which torch/torchvision pairs `make install` keeps in an active environment."""
import os
import subprocess
import sys

from . import load_tool

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "torch_pair.py")


def test_supported_pairs():
    supported = load_tool("torch_pair").supported
    assert supported("2.14.1", "0.29.1") == "" and supported("2.4.0+cu118", "0.19.0+cu118") == ""
    assert supported("2.9.1", "0.24.1") == ""
    assert "outside the supported 2.4-2.14" in supported("2.3.1", "0.18.1")
    assert "outside" in supported("2.15.0", "0.30.0")
    assert "not the release for torch 2.9.1 (0.24)" in supported("2.9.1", "0.29.1")


def test_this_environment_is_kept():
    done = subprocess.run([sys.executable, TOOL], capture_output=True, text=True)
    assert done.returncode == 0 and "keeping this environment's torch 2.14.1" in done.stdout


def test_makefile_keeps_or_pins():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    # dry runs: inside an active virtualenv the pair check decides; a fresh .venv always gets the pins
    dry = subprocess.run(["make", "-n", "-B", "install", "VIRTUAL_ENV="], cwd=root, capture_output=True, text=True)
    assert "tools/torch_pair.py" in dry.stdout and "torch==2.14.1 torchvision==0.29.1" in dry.stdout
