"""``python experiments/suite --size small|full``: see suite/cli.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: common and the other scripts

from suite.cli import main

sys.exit(main())
