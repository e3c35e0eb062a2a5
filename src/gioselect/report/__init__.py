"""Run report: the objective curve, a 2-D picture of the selection, and one self-contained HTML file.

The pipeline calls :func:`write_report` at the end of ``gioselect select`` with the run record
(``manifest.json`` as a dict), the objective trace and small samples of target, pool and selection.
Everything here is deterministic: identical inputs give identical bytes (no timestamps except those in the
manifest, PNG metadata stripped), so reports can be diffed and cached.

Plots use matplotlib's object-oriented API on an Agg canvas, without pyplot: no global backend switch and
no figure registry to leak into, so the functions are safe to call from a library, a notebook or a thread.

Layout: :mod:`.page` (:func:`write_report`, the HTML), :mod:`.plots` (the pictures), :mod:`.format` (text
formatting, the summary lines, the atomic write) and :mod:`.picks` (``picks.csv``); every public name is
importable from :mod:`gioselect.report` itself.
"""

from __future__ import annotations

from .format import render_summary_text
from .page import PICKS_SHOWN, PREVIEW_CHARS, write_report
from .picks import write_picks
from .plots import TSNE_MAX_ROWS, pca_2d, plot_kl_trace, plot_projection, tsne_2d

__all__ = ["PICKS_SHOWN", "PREVIEW_CHARS", "TSNE_MAX_ROWS", "pca_2d", "plot_kl_trace", "plot_projection",
           "render_summary_text", "tsne_2d", "write_picks", "write_report"]
