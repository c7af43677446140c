#!/usr/bin/env python
"""`vidpool test` under the name PySlowFast users know:

    python tools/test_net.py --cfg configs/demo/r3d10_softpool.yaml [--weights FILE] [KEY VALUE ...]
"""
import sys

from vidpool.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("test"))
