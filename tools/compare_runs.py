#!/usr/bin/env python
"""`vidpool compare`: seed-level statistics between two methods' runs.

    python tools/compare_runs.py --a A_seed0.csv A_seed1.csv ... --b B_seed0.csv B_seed1.csv ... [--json]
"""
import sys

from vidpool.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("compare"))
