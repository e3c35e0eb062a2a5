"""The figure of a :func:`gioselect.evaluate.compare_methods` result: each metric against selection size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .compare import COMPARE_METRICS


def plot_comparison(result: Mapping[str, Any], path: Any, *, metrics: Sequence[str] | None = None) -> Path:
    """PNG of each metric against selection size, one line per method (random with a band, full dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    methods = result["methods"]
    present = [m for m in (metrics or COMPARE_METRICS)
               if any(m in row for rows in methods.values() for row in rows)]
    cols = 3
    nrows = max(1, (len(present) + cols - 1) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * nrows))
    styles = {"gio": ("tab:red", "-o"), "random": ("tab:gray", "-s"), "knn": ("tab:blue", "-^"),
              "herding": ("tab:green", "-d"), "facility": ("tab:brown", "-v"), "dsir": ("tab:olive", "-P"),
              "oracle": ("black", ":x"), "full": ("tab:purple", "--")}
    for i, metric in enumerate(present):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for name, rows in methods.items():
            pts = [(r["size"], r[metric], r.get(f"{metric}_std")) for r in rows if metric in r]
            if not pts:
                continue
            color, style = styles.get(name, ("tab:orange", "-"))
            if name == "full":
                ax.axhline(pts[0][1], color=color, linestyle="--", label=f"full ({pts[0][0]})")
                continue
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            ax.plot(xs, ys, style, color=color, label=name, markersize=4)
            if name in ("random", "oracle") and all(p[2] is not None for p in pts):
                sd = np.array([p[2] for p in pts])
                ax.fill_between(xs, np.array(ys) - sd, np.array(ys) + sd, color=color, alpha=0.15)
        ax.set_title(metric)
        ax.set_xlabel("selection size")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png", dpi=90, metadata={"Software": None})
    return out
