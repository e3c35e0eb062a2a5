"""Write a small sample for the command-line quick start: pool.parquet, target.parquet and eval.parquet.

    python examples/make_sample.py            # into the current directory
    python examples/make_sample.py --dir data

The pool is 2,000 unit vectors (32-D) from four topics with a ``topic`` and a ``text`` column; the target is 200
vectors from the topic "tech"; eval.parquet is 20 pool rows of that topic, to try ``--exclude``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TOPICS = ("business", "sport", "tech", "politics")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_sample(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(len(TOPICS), 32)))
    lab = rng.integers(0, len(TOPICS), size=2000)
    pool = _unit(centres[lab] + 0.25 * rng.normal(size=(2000, 32)))
    target = _unit(centres[2] + 0.25 * rng.normal(size=(200, 32)))
    folder.mkdir(parents=True, exist_ok=True)
    topic = [TOPICS[t] for t in lab]
    pq.write_table(pa.table({"id": np.arange(2000), "topic": topic,
                             "text": [f"a {t} sentence, number {i}" for i, t in enumerate(topic)],
                             "embedding": list(pool)}), folder / "pool.parquet")
    pq.write_table(pa.table({"embedding": list(target)}), folder / "target.parquet")
    ev = np.flatnonzero(lab == 2)[:20]
    pq.write_table(pa.table({"embedding": list(pool[ev])}), folder / "eval.parquet")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("."), help="where to write the files (default: here)")
    make_sample(ap.parse_args().dir)
