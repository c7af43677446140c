#!/usr/bin/env python
"""Does the active environment already hold a torch/torchvision pair vidpool supports? Exit 0 (and
say so) when it does, 1 when not. `make install` asks this inside an active virtualenv, to keep a
cluster's own torch build (e.g. one for an older CUDA driver) instead of installing the pinned one.

Supported: torch 2.4 to 2.14 (the custom-op registration vidpool uses came in 2.4) with the
torchvision release made for it (0.19 to 0.29: minor version = torch's + 15). Tested: torch 2.14.1
and torchvision 0.29.1, the versions a fresh `.venv` gets.
"""
import re
import sys

TORCH_RANGE = ((2, 4), (2, 14))


def _major_minor(version: str):
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def supported(torch_version: str, torchvision_version: str) -> str:
    """'' when the pair is supported, else the reason."""
    t, v = _major_minor(torch_version), _major_minor(torchvision_version)
    if t is None or not TORCH_RANGE[0] <= t <= TORCH_RANGE[1]:
        return f"torch {torch_version} is outside the supported {TORCH_RANGE[0][0]}.{TORCH_RANGE[0][1]}" \
               f"-{TORCH_RANGE[1][0]}.{TORCH_RANGE[1][1]}"
    if v != (0, t[1] + 15):
        return f"torchvision {torchvision_version} is not the release for torch {torch_version} (0.{t[1] + 15})"
    return ""


def main() -> int:
    try:
        import torch
        import torchvision
    except Exception as e:  # noqa: BLE001 - not installed, or broken: install the pinned pair
        print(f"no usable torch/torchvision here ({type(e).__name__}: {e}); installing the pinned pair")
        return 1
    why = supported(torch.__version__, torchvision.__version__)
    if why:
        print(f"{why}; installing the pinned pair")
        return 1
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
    print(f"keeping this environment's torch {torch.__version__} ({cuda}) and torchvision {torchvision.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
