#!/usr/bin/env python
"""`vidpool train` under the name PySlowFast users know:

    python tools/train_net.py --cfg configs/demo/r3d10_softpool.yaml [KEY VALUE ...]
"""
import sys

from vidpool.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("train"))
