"""``python experiments/suite --size small|full``: see suite/cli.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: common and the other scripts

from suite.cli import main

if __name__ == "__main__":  # not in the worker processes of --jobs (spawn imports this file as __mp_main__)
    sys.exit(main())
