"""``python -m vidpool COMMAND ...``: the same as the ``vidpool`` command."""
import sys

from vidpool.cli import main

sys.exit(main())
