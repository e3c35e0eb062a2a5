"""``python -m gioselect.cli``: the same as the ``gioselect`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
