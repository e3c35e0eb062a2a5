"""The HTML report: :func:`write_report` assembles one self-contained page from the run record, the
pictures (:mod:`.plots`) and the picks.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidTypeError
from .format import (
    NA,
    atomic_write_bytes,
    dig,
    escape,
    final_objective,
    fmt_bytes,
    fmt_command,
    fmt_seconds,
    fmt_value,
    quantization_text,
    run_warnings,
    selected_text,
    stop_text,
    wall_time,
)
from .plots import TSNE_MAX_ROWS, f1_curve_png, has_tsne, initial_value, kl_trace_png, projection_png, trace_values

__all__ = ["PICKS_SHOWN", "PREVIEW_CHARS", "write_report"]

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:60em;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}.note{color:#666;font-style:italic}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em;word-break:break-all}
img{max-width:100%;height:auto}footer{margin-top:2em;color:#888;font-size:.85em}
"""




def _table(header: Sequence[str], rows: Sequence[Sequence[str]], num_cols: Sequence[int] = ()) -> str:
    """An HTML table; header and cells must already be escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """Two-column key/value table; keys and values must already be escaped."""
    return "<table>\n" + "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "\n</table>"


def _img(png: bytes, alt: str) -> str:
    """An <img> with the PNG inlined as a base64 data URI."""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _mapping_rows(m: Any, *, sort: bool) -> list[tuple[str, str]]:
    """Escaped (key, value) rows of a mapping; empty when ``m`` is not a mapping."""
    if not isinstance(m, Mapping):
        return []
    items = [(str(k), v) for k, v in m.items()]
    if sort:
        items.sort(key=lambda kv: kv[0])
    return [(f"<code>{html.escape(k)}</code>", escape(v)) for k, v in items]


def _inputs_section(manifest: Mapping[str, Any]) -> str:
    inputs = dig(manifest, "inputs")
    if not isinstance(inputs, Mapping) or not inputs:
        return _note("No input files recorded.")
    rows = []
    for role, info in inputs.items():
        sha = dig(info, "sha256")
        sha_text = html.escape(sha[:16], quote=True) if isinstance(sha, str) else escape(sha)
        rows.append([
            html.escape(str(role)),
            f"<code>{escape(dig(info, 'path'))}</code>",
            escape(dig(info, "format")),
            escape(dig(info, "rows")),
            escape(dig(info, "dim")),
            html.escape(fmt_bytes(dig(info, "bytes"))),
            f"<code>{sha_text}</code>",
        ])
    header = ["input", "path", "format", "rows", "dim", "size", "sha256 (prefix)"]
    return _table(header, rows, num_cols=(3, 4))


def _timings_section(manifest: Mapping[str, Any]) -> str:
    t = dig(manifest, "timings_s")
    if not isinstance(t, Mapping) or not t:
        return _note("No timings recorded.")
    wall = wall_time(manifest)
    rows = []
    for phase, sec in t.items():
        share = NA
        if (wall and isinstance(sec, numbers.Real) and not isinstance(sec, bool) and str(phase) != "total"
                and math.isfinite(float(sec))):
            share = f"{100.0 * float(sec) / wall:.1f}%"
        rows.append([html.escape(str(phase)), html.escape(fmt_seconds(sec)), share])
    return _table(["phase", "time", "share of wall time"], rows, num_cols=(1, 2))


def _extra(extra_sections: Any) -> list[tuple[str, str]]:
    """Validate ``extra_sections`` as (heading, html) string pairs."""
    out = []
    for i, item in enumerate(extra_sections):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise InvalidTypeError(
                f"extra_sections[{i}]: expected a (heading, html) pair of strings, got {item!r}"
            )
        out.append((item[0], item[1]))
    return out


def _warnings_html(m: Mapping[str, Any]) -> str:
    """The run's degenerate-result warnings (manifest ``warnings``), in a red box above the summary."""
    items = run_warnings(m)
    if not items:
        return ""
    lis = "".join(f"<li>{html.escape(str(w))}</li>" for w in items)
    return ('<div class="warnings" style="border:2px solid #b00;padding:0.5em 1em;color:#700">'
            f"<strong>Warning{'s' if len(items) > 1 else ''}</strong><ul>{lis}</ul></div>")


def write_report(
    path: Path,
    *,
    manifest: dict,
    kl_trace: Sequence[float],
    initial_kl: float | None,
    target_sample: np.ndarray | None,
    pool_sample: np.ndarray | None,
    selected_sample: np.ndarray | None,
    extra_sections: Sequence[tuple[str, str]] = (),
    projection: str = "pca",
    picks: Mapping[str, np.ndarray] | None = None,
    pool_path: Path | None = None,
    selected_path: Path | None = None,
    report_fields: Sequence[str] = (),
    text_field: str | None = None,
) -> Path:
    """Write the run report: one self-contained HTML file, readable offline.

    Sections: summary (selected count, pool and target rows, candidates, quantisation, stop reason,
    initial and final objective, wall time, seed), objective curve, 2-D projection, parameters, inputs
    (path, format, rows, dim, size, sha256 prefix), timings per phase, outputs, package versions, then
    ``extra_sections``. Values come from ``manifest``; missing keys show as "n/a". Every manifest value is
    HTML-escaped. Plots are PNGs inlined as base64 data URIs; there is no external CSS, script or font.
    Identical inputs give identical bytes.

    Parameters
    ----------
    path : path-like
        Output file. Written atomically (temporary file in the same directory, then ``os.replace``), so a
        failure leaves either the old file or none; parent directories are created.
    manifest : dict
        The run record (keys as in ``manifest.json``: ``gioselect_version``, ``command``, ``created_utc``,
        ``parameters``, ``seed``, ``inputs``, ``counts``, ``stop_reason``, ``initial_kl``, ``final_kl``,
        ``timings_s``, ``versions``, ``quantization``, ``outputs``). All optional.
    kl_trace : sequence of float, shape (s,)
        Objective after each pick (may be empty).
    initial_kl : float or None
        Objective of the start set (x = 0 of the curve). Also used in the summary when the manifest has none.
    target_sample, pool_sample : ndarray of shape (m, d) or None
        Samples for the projection; when either is None the projection is skipped with a note.
    selected_sample : ndarray of shape (q, d) or None
        Sample of the selection; None draws no selected points.
    extra_sections : sequence of (str, str), default ()
        ``(heading, html)`` pairs appended in order. The heading is escaped; the HTML is inserted as given
        and must already be escaped by the caller.
    projection : {"pca", "tsne"}, default "pca"
        The 2-D map: PCA of target + pool sample, or a t-SNE map (scikit-learn; at most
        :data:`TSNE_MAX_ROWS` points; PCA when scikit-learn is missing). The CLI uses t-SNE for text pools.
    picks : mapping, optional
        What :func:`write_picks` returns: the "Picks" section lists the first :data:`PICKS_SHOWN` rows by rank
        with their gain, nearest target ids and a preview of their fields (read from ``selected_path``).
    pool_path, selected_path : path, optional
        The pool file (for ``report_fields``) and the selected rows file (for the previews).
    report_fields : sequence of str
        Pool columns to break the selection down by: counts and shares, selection against pool.
    text_field : str, optional
        The text column, shown first in the previews.

    The manifest's ``stop_reason`` is explained in words, and a ``warnings`` list in the manifest (the
    warnings the run printed) is shown in full.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidTypeError
        ``manifest`` is not a mapping, ``initial_kl`` is not a number, or ``extra_sections`` are not
        string pairs.
    InvalidInputError
        ``kl_trace`` is not 1-D numeric, or the samples are malformed (not 2-D, NaN/inf, dimensions differ).
    """
    if not isinstance(manifest, Mapping):
        raise InvalidTypeError(f"manifest: expected a dict (the run record), got {type(manifest).__name__}")
    out = Path(path)
    trace = trace_values(kl_trace)
    init_arg = initial_value(initial_kl)
    extras = _extra(extra_sections)
    m = manifest
    version = dig(m, "gioselect_version")

    init_val = dig(m, "initial_kl")
    if init_val is None:
        init_val = init_arg
    summary = [
        ("selected rows", html.escape(selected_text(m))),
        ("pool rows", escape(dig(m, "counts", "pool_rows"))),
        ("target rows", escape(dig(m, "counts", "target_rows"))),
        ("candidates", escape(dig(m, "counts", "candidates"))),
        ("quantisation", html.escape(quantization_text(m))),
        *([("row-level pass", escape(dig(m, "refine_decision", "rule")))]
          if dig(m, "refine_decision", "rule") is not None else []),
        ("stop reason", html.escape(stop_text(dig(m, "stop_reason")))),
        *([("size", escape(dig(m, "size_reason")))] if dig(m, "size_reason") is not None else []),
        ("initial objective", escape(init_val)),
        ("final objective", escape(final_objective(m, trace))),
        ("wall time", html.escape(fmt_seconds(wall_time(m)))),
        ("seed", escape(dig(m, "seed"))),
    ]
    if dig(m, "exclusion") is not None:
        ex = m["exclusion"]
        summary.append(("excluded rows", html.escape(
            f"{fmt_value(ex.get('excluded_rows'))} ({fmt_value(ex.get('duplicates'))} duplicates, "
            f"{fmt_value(ex.get('near_duplicates'))} near-duplicates at cosine >= {fmt_value(ex.get('threshold'))} to "
            f"{fmt_value(ex.get('exclude_rows'))} rows of {fmt_value(ex.get('source'))})")))

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gioselect report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>gioselect selection report</h1>",
        f'<p class="sub">created {escape(dig(m, "created_utc"))} (UTC) &middot; gioselect {escape(version)}</p>',
        f"<p>Command: <code>{html.escape(fmt_command(dig(m, 'command')))}</code></p>",
        '<h2 id="summary">Summary</h2>',
        _warnings_html(m),
        _kv_table(summary),
        '<h2 id="objective">Objective per pick</h2>',
    ]
    qlabel = "clusters" if dig(m, "quantization") is not None else "picks"
    if np.isfinite(trace).any() or (init_arg is not None and math.isfinite(init_arg)):
        png = kl_trace_png(trace, init_arg, "GIO objective per pick", qlabel)
        parts.append(_img(png, "objective (k-NN KL estimate) against the number of picks"))
    else:
        parts.append(_note("No objective values recorded; the curve is skipped."))

    f1 = dig(m, "size_estimate", "f1")
    if isinstance(f1, Mapping) and f1.get("curve"):  # the F1 rule (the automatic size): where it cut
        parts.append('<h2 id="size">Automatic size: estimated F1 per row selected</h2>')
        along = ("the row-level pass's ranking of the chosen clusters' rows" if f1.get("rule") == "f1_along_row_pass"
                 else "GIO's picks")
        parts.append(_img(f1_curve_png(dict(f1["curve"]), f1.get("best_rows"), f"The F1 rule along {along}"),
                          "estimated F1 of retrieving the target-like rows against the rows selected"))
        parts.append(_note(str(f1.get("reason", ""))))
    parts.append('<h2 id="projection">2-D projection</h2>')
    if target_sample is None or pool_sample is None:
        parts.append(_note("Samples were not provided; the projection is skipped."))
    else:
        title = "Target, pool sample and selection"
        if projection == "tsne" and not has_tsne(target_sample, pool_sample, selected_sample):
            projection = "pca"
        png = projection_png(target_sample, pool_sample, selected_sample, title, projection)
        if projection == "tsne":
            parts.append(_img(png, "target, pool sample and selection in a t-SNE map"))
            parts.append(_note(f"t-SNE map (scikit-learn, cosine) of at most {TSNE_MAX_ROWS} sampled points; "
                               "distances between far-apart groups are not meaningful, neighbourhoods are."))
        else:
            parts.append(_img(png, "target, pool sample and selection in the PCA plane of target and pool"))
            parts.append(_note("Axes: first two principal components of target and pool sample together."))
    parts += _warnings_section(m)
    parts += _picks_section(picks, selected_path, text_field)
    parts += _breakdown_section(picks, pool_path, report_fields)

    param_rows = _mapping_rows(dig(m, "parameters"), sort=True)
    version_rows = _mapping_rows(dig(m, "versions"), sort=True)
    output_rows = _mapping_rows(dig(m, "outputs"), sort=False)
    parts += [
        '<h2 id="parameters">Parameters</h2>',
        _kv_table(param_rows) if param_rows else _note("No parameters recorded."),
        '<h2 id="inputs">Inputs</h2>',
        _inputs_section(m),
        '<h2 id="timings">Timings</h2>',
        _timings_section(m),
        '<h2 id="outputs">Outputs</h2>',
        _kv_table(output_rows) if output_rows else _note("No outputs recorded."),
        '<h2 id="versions">Package versions</h2>',
        _kv_table(version_rows) if version_rows else _note("No package versions recorded."),
    ]
    for heading, body in extras:
        parts += [f"<h2>{html.escape(heading)}</h2>", body]
    parts += [f"<footer>Generated by gioselect {escape(version)}.</footer>", "</body>", "</html>", ""]

    atomic_write_bytes(out, "\n".join(parts).encode("utf-8"))
    logger.info("wrote report %s", out)
    return out


PICKS_SHOWN = 50
"""Picks the report lists (by rank); ``picks.csv`` has all of them."""

PREVIEW_CHARS = 160


def _preview_records(path: Path | None, positions: np.ndarray) -> list[dict[str, Any]] | None:
    """The rows at ``positions`` of a selected-rows file (parquet/jsonl/csv) as dicts; None for .npy."""
    if path is None or not Path(path).exists() or Path(path).suffix.lower() == ".npy":
        return None
    from ..io import detect_format

    p = Path(path)
    want = set(positions.tolist())
    fmt = detect_format(p)  # by every extension the readers take (.ndjson, .pq, upper case too)
    if fmt == "jsonl":
        got: dict[int, dict[str, Any]] = {}
        with open(p, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i in want:
                    got[i] = json.loads(line)
        return [got.get(int(i), {}) for i in positions]
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p)
    else:  # the delimiter and header convention of the pool, which the selected rows keep
        from ..io.csv import read_table

        table = read_table(p, "selected rows")
    cols = [f.name for f in table.schema if not pa.types.is_list(f.type) and not pa.types.is_fixed_size_list(f.type)]
    return table.select(cols).take(pa.array(positions, type=pa.int64())).to_pylist()


def _preview_text(rec: Mapping[str, Any], text_field: str | None) -> str:
    skip = {"gio_row_id", "gio_rank"}
    items = [(k, v) for k, v in rec.items() if k not in skip and not isinstance(v, (list, dict))]
    if text_field is not None and text_field in rec:
        text = str(rec[text_field])
        rest = ", ".join(f"{k}={v}" for k, v in items if k != text_field)
        text = text + (f"  [{rest}]" if rest else "")
    else:
        text = ", ".join(f"{k}={v}" for k, v in items)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _picks_section(picks: Mapping[str, np.ndarray] | None, selected_path: Path | None,
                   text_field: str | None) -> list[str]:
    if picks is None:
        return []
    ids = np.asarray(picks["gio_row_id"], dtype=np.int64)
    out = ['<h2 id="picks">Picks</h2>']
    if ids.shape[0] == 0:
        return [*out, _note("Nothing was selected.")]
    shown = min(PICKS_SHOWN, ids.shape[0])
    positions = np.searchsorted(np.sort(ids), ids[:shown])  # the selected-rows file is in ascending row order
    records = _preview_records(selected_path, positions)
    rows = []
    for j in range(shown):
        g = float(picks["gio_gain"][j])
        near = " ".join(str(int(x)) for x in picks["gio_nearest_target"][j])
        preview = _preview_text(records[j], text_field) if records is not None else "(vectors only)"
        rows.append([str(j), str(int(ids[j])), "n/a" if not math.isfinite(g) else f"{g:.4g}", near,
                     html.escape(preview)])
    out.append(_note(f"The first {shown} of {ids.shape[0]:,} selected rows in selection order. Gain: how much "
                     "the pick lowered the objective (a quantised pick's rows share it). Nearest target rows: "
                     "the target examples this row stands for. All rows: picks.csv."))
    out.append(_table(["rank", "pool row", "gain", "nearest target rows", "preview"], rows, num_cols=(0, 1, 2)))
    return out


def _breakdown_section(picks: Mapping[str, np.ndarray] | None, pool_path: Path | None,
                       fields: Sequence[str]) -> list[str]:
    if not fields or picks is None or pool_path is None:
        return []
    from ..io import read_column

    ids = np.asarray(picks["gio_row_id"], dtype=np.int64)
    out: list[str] = []
    for f in fields:
        values = np.array(["(missing)" if v is None else str(v)  # a missing label is a category, lists too
                           for v in read_column(pool_path, f, name="pool", allow_null=True)])
        uniq, pool_counts = np.unique(values, return_counts=True)
        sel_counts = dict(zip(*np.unique(values[ids], return_counts=True), strict=True))
        order = np.argsort(-pool_counts, kind="stable")[:40]
        rows = []
        for i in order:
            sc = int(sel_counts.get(uniq[i], 0))
            rows.append([html.escape(str(uniq[i])), f"{sc:,}", f"{100 * sc / max(1, ids.shape[0]):.1f}%",
                         f"{int(pool_counts[i]):,}", f"{100 * pool_counts[i] / values.shape[0]:.1f}%"])
        out += [f"<h2>Selection by {html.escape(f)}</h2>",
                _table([html.escape(f), "selected", "share of selection", "pool", "share of pool"], rows,
                       num_cols=(1, 2, 3, 4))]
        if uniq.shape[0] > 40:
            out.append(_note(f"The 40 most common of {uniq.shape[0]:,} values."))
    return out


def _warnings_section(m: Mapping[str, Any]) -> list[str]:
    warns = dig(m, "warnings")
    if not warns:
        return ['<h2 id="warnings">Warnings</h2>', _note("The run printed no warnings.")]
    items = "".join(f"<li>{escape(w)}</li>" for w in warns)
    return ['<h2 id="warnings">Warnings</h2>', f"<ul>{items}</ul>"]
