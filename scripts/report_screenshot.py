"""Developer check: render a run's report.html in headless Chromium and save a full-page PNG to look at.

    python scripts/report_screenshot.py --out runs/report.png              # makes a small run first
    python scripts/report_screenshot.py --run runs/demo/selection --out runs/demo.png

Needs the Debian package ``chromium`` (``apt-get install -y chromium``). Do not commit the screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def make_run(work: Path) -> Path:
    """A small two-topic parquet pool with a text and a topic column, selected with --report-field topic."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gioselect.cli import main

    rng = np.random.default_rng(0)
    c = rng.normal(size=(3, 32))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    topics = ["sport", "politics", "tech"]
    lab = rng.integers(0, 3, size=1500)
    pool = c[lab] + 0.2 * rng.normal(size=(1500, 32))
    pool = (pool / np.linalg.norm(pool, axis=1, keepdims=True)).astype(np.float32)
    tgt = c[2] + 0.2 * rng.normal(size=(150, 32))
    tgt = (tgt / np.linalg.norm(tgt, axis=1, keepdims=True)).astype(np.float32)
    text = [f"{topics[t]} story number {i}: a sentence about {topics[t]}" for i, t in enumerate(lab)]
    pq.write_table(pa.table({"text": text, "topic": [topics[t] for t in lab], "embedding": list(pool)}),
                   work / "pool.parquet")
    pq.write_table(pa.table({"embedding": list(tgt)}), work / "target.parquet")
    out = work / "run"
    rc = main(["select", "--pool", str(work / "pool.parquet"), "--target", str(work / "target.parquet"),
               "--out", str(out), "--clusters", "0", "--stop", "sequential_increase_tolerance",
               "--report-field", "topic", "-q"])
    if rc != 0:
        sys.exit(f"gioselect select failed with exit code {rc}")
    return out


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 4000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("no chromium on PATH: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png.resolve()}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="a finished run folder (default: make a small one)")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--height", type=int, default=4000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run if args.run is not None else make_run(Path(tmp))
        screenshot(run / "report.html", args.out, height=args.height)


if __name__ == "__main__":
    main()
