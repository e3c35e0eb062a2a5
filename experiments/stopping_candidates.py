"""Candidate size rules scored offline on the curves of ``stopping_study.py --suite`` (issue 17, sixth pass).

Each record of a ``--suite`` run holds GIO's order on one suite mask task and seed (``ids``, ``hits``), the size
estimate (``share``, Elkan & Noto's ``c``) and the logistic classifier's out-of-fold score of every pool row. A
rule maps those (and, for the classifier variants, the task's rows rebuilt with ``experiments/suite/tasks.py``)
to a size; its gap is the best F1 on the curve minus the F1 at that size. Rules:

* ``f1-2%`` - today's default: :class:`gioselect.sizing.F1Prefix` (largest prefix within 2% of the best
  estimated F1, with its patience stop) on the recorded posteriors.
* ``cap-k`` - the same, cut at ``k * share * |G|`` (``share``: the pu-roc mixture-proportion estimate).
* ``W=share`` - the F1 with the target-like total ``share * |G|`` in place of the posteriors' sum.
  (The posteriors rescaled to sum to ``share * |G|`` give the same size: F1 scaled by a constant.)
* ``lift-first`` / ``lift<l>-last`` - no F1: the mean posterior of the last ``LIFT_WINDOW`` picks against ``l``
  times the pool's mean posterior ``W / |G|`` (a pick worth keeping looks more target-like than a random pool
  row); the size just before it first falls below (``first``), or the last size at which it is above (``last``).
* ``f1-lift-sub`` - the F1 rule on the posteriors' lift ``clip((w - W/|G|) / (1 - W/|G|), 0, 1)``.
* ``iso`` - the out-of-fold logistic scores calibrated by isotonic regression on the training rows (target = 1,
  pool = 0), then Elkan & Noto's posterior with ``c`` the calibrated target mean.
* ``rff`` - a cross-fitted logistic regression on the standardised principal coordinates plus ``RFF_DIM``
  random Fourier features of them (Gaussian kernel, bandwidth sqrt(dimensions), fixed seed).
* ``knn`` - cross-fitted k-NN share of target rows among the k nearest training rows (standardised principal
  coordinates), k from ``KNN_K`` by out-of-fold log-loss.

Usage: ``python experiments/stopping_candidates.py FILE.jsonl [--classifiers iso,rff,knn]``; prints one markdown
table (per task the curve's best F1 @ size per seed, then per rule its gap @ the size it keeps) and the mean gaps
on seeds 0-2 and 3-5.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gioselect.logistic import fit_logistic, principal_scaling, sigmoid
from gioselect.sizing import F1Prefix, _estimate

RFF_DIM = 300
KNN_K = (10, 25, 50, 100, 200)
LIFT_WINDOW = 100
FOLDS = 5
N_COMPONENTS = 64


def prefix_rule(w_picks: np.ndarray, total: float, cap: int | None = None) -> int:
    """Size kept by :class:`F1Prefix` fed the picks' posteriors in order (cut at ``cap`` picks)."""
    fp = F1Prefix(total)
    for i, w in enumerate(w_picks):
        if cap is not None and i >= cap:
            break
        fp.add(float(w))
        if fp.done:
            break
    return fp.kept_picks


def lift_rule(w_picks: np.ndarray, base: float, window: int = LIFT_WINDOW, last: bool = True) -> int:
    """Size at which the mean posterior of the last ``window`` picks is at least ``base`` for the last time
    (``last``) or, with ``last=False``, just before it first falls below ``base``."""
    cs = np.concatenate([[0.0], np.cumsum(w_picks)])
    n = np.arange(window, w_picks.shape[0] + 1)
    win = (cs[n] - cs[n - window]) / window
    if last:
        ok = np.flatnonzero(win >= base)
        return int(n[ok[-1]]) if ok.size else window
    below = np.flatnonzero(win < base)
    return int(n[below[0]]) - 1 if below.size else int(w_picks.shape[0])


def en_posterior(g: np.ndarray, c: float) -> np.ndarray:
    g = np.clip(g, 0.0, 1.0 - 1e-12)
    return np.asarray(np.clip((1.0 - c) / c * g / (1.0 - g), 0.0, 1.0))


def _features(x: np.ndarray, tr: np.ndarray, r: int) -> np.ndarray:
    """Standardised principal coordinates (unit variance) of every row of ``x``, fitted on rows ``tr`` (the
    library's classifier features, :func:`gioselect.logistic.principal_scaling`)."""
    mu, sd, axes, psd, _ = principal_scaling(x[tr], r)
    return np.asarray(((x - mu) / sd) @ axes / psd)


def crossfit(pool: np.ndarray, target: np.ndarray, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold scores (target rows, pool rows) of the ``rff`` or ``knn`` classifier."""
    rng = np.random.default_rng([seed, 17])
    x = np.vstack([target.astype(np.float64), pool.astype(np.float64)])
    n_t = target.shape[0]
    y = np.concatenate([np.ones(n_t), np.zeros(pool.shape[0])])
    fold = np.concatenate([rng.permutation(n_t) % FOLDS, rng.permutation(pool.shape[0]) % FOLDS])
    r = min(N_COMPONENTS, x.shape[1])
    if kind == "rff":
        omega = rng.normal(0.0, 1.0 / math.sqrt(r), (r, RFF_DIM))
        phase = rng.uniform(0.0, 2 * math.pi, RFF_DIM)
        scores = np.empty(x.shape[0])
        for f in range(FOLDS):
            tr = fold != f
            z = _features(x, tr, r)
            # Unit-scale Fourier features (sqrt(2) cos), so the one l2 suits both blocks.
            feats = np.hstack([z, math.sqrt(2.0) * np.cos(z @ omega + phase), np.ones((x.shape[0], 1))])
            w = fit_logistic(feats[tr], y[tr], 1e-3)
            scores[~tr] = sigmoid(feats[~tr] @ w)
        return scores[:n_t], scores[n_t:]
    if kind == "knn":
        per_k = {k: np.empty(x.shape[0]) for k in KNN_K}
        kmax = max(KNN_K)
        prior = float(y.mean())
        for f in range(FOLDS):
            tr = fold != f
            z = _features(x, tr, r)
            ztr, yt = z[tr], y[tr]
            te = np.flatnonzero(~tr)
            sq = (ztr * ztr).sum(1)
            for start in range(0, te.shape[0], 2048):
                q = z[te[start:start + 2048]]
                d2 = (q * q).sum(1)[:, None] - 2 * q @ ztr.T + sq[None, :]
                nn = np.argpartition(d2, kmax, axis=1)[:, :kmax]
                order = np.take_along_axis(d2, nn, axis=1).argsort(axis=1)
                lab = yt[np.take_along_axis(nn, order, axis=1)]
                cum = np.cumsum(lab, axis=1)
                for k in KNN_K:
                    per_k[k][te[start:start + 2048]] = (cum[:, k - 1] + prior) / (k + 1.0)
        loss = {k: float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))) for k, s in per_k.items()}
        k_best = min(loss, key=lambda k: loss[k])
        s = per_k[k_best]
        return s[:n_t], s[n_t:]
    raise ValueError(kind)


def isotonic(g_t: np.ndarray, g_u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    s = np.concatenate([g_t, g_u])
    y = np.concatenate([np.ones(g_t.shape[0]), np.zeros(g_u.shape[0])])
    iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip").fit(s, y)
    return iso.predict(g_t), iso.predict(g_u)


def rules_for(rec: dict[str, Any], classifiers: list[str]) -> dict[str, int]:
    ids = np.asarray(rec["ids"], dtype=np.int64)
    n_pool = rec["pool_rows"]
    g_u = np.asarray(rec["pool_scores"], dtype=float)
    c = rec["estimate"]["diagnostics"]["c"]
    w = en_posterior(g_u, c)
    share_rows = rec["estimate"]["share"] * n_pool
    out = {"f1-2%": prefix_rule(w[ids], w.sum())}
    for k in (1.25, 1.5, 2.0):
        out[f"cap-{k:g}"] = prefix_rule(w[ids], w.sum(), cap=int(k * share_rows))
    out["W=share"] = prefix_rule(w[ids], share_rows)
    base = float(w.mean())
    out["lift-first"] = lift_rule(w[ids], base, last=False)
    for lam in (1.0, 0.9, 0.75):
        out[f"lift{lam:g}-last"] = lift_rule(w[ids], lam * base)
    ws = np.clip((w - base) / (1.0 - base), 0.0, 1.0)
    out["f1-lift-sub"] = prefix_rule(ws[ids], ws.sum())
    if not classifiers:
        return out
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from suite.core import TASKS

    task = TASKS[rec["task"]].build("full", rec["seed"])
    for kind in classifiers:
        if kind == "iso":
            _est, gt0, gu0 = _estimate(task.pool, task.target, seed=rec["seed"], sample_rows=20000, folds=5,
                                       n_components=64, l2=1e-3, block_rows=65536, pool_rows=None)
            gt, gu = isotonic(gt0, gu0)
        else:
            gt, gu = crossfit(np.asarray(task.pool), np.asarray(task.target), rec["seed"], kind)
        cc = float(np.clip(gt.mean(), 1e-12, 1.0))
        wk = en_posterior(gu, cc)
        out[kind] = prefix_rule(wk[ids], wk.sum())
        out[kind + ":W"] = round(float(wk.sum()))
        mask = task.mask
        out[kind + ":auc_pool"] = int(1000 * _auc_pool(gu, mask))
    return out


def _auc_pool(s: np.ndarray, mask: np.ndarray) -> float:
    from scipy.stats import rankdata

    rk = rankdata(s)
    n1 = int(mask.sum())
    return float((rk[mask].sum() - n1 * (n1 + 1) / 2) / (n1 * (mask.shape[0] - n1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--classifiers", default="", help="comma-separated: iso, rff, knn")
    ap.add_argument("--tasks", default="", help="only these tasks (comma-separated)")
    ap.add_argument("--json", type=Path, default=None, help="write every (task, seed, rule) size here")
    args = ap.parse_args(argv)
    classifiers = [c for c in args.classifiers.split(",") if c]
    recs = [json.loads(line) for p in args.files for line in p.read_text().splitlines() if line.strip()]
    if args.tasks:
        recs = [r for r in recs if r["task"] in args.tasks.split(",")]
    table: dict[str, dict[str, dict[int, tuple[int, float]]]] = {}
    best: dict[tuple[str, int], tuple[int, float]] = {}
    extra: dict[tuple[str, int], dict[str, int]] = {}
    for rec in recs:
        hits = np.asarray(rec["hits"], dtype=float)
        f = 2.0 * np.cumsum(hits) / (np.arange(1, hits.shape[0] + 1) + rec["true_rows"])
        b = int(np.argmax(f))
        best[(rec["task"], rec["seed"])] = (b + 1, float(f[b]))
        sizes = rules_for(rec, classifiers)
        for rule, n in sizes.items():
            if ":" in rule:
                extra.setdefault((rec["task"], rec["seed"]), {})[rule] = n
                continue
            gap = float(f[b] - (f[n - 1] if n > 0 else 0.0))
            table.setdefault(rec["task"], {}).setdefault(rule, {})[rec["seed"]] = (n, gap)
        print(f"# {rec['task']} seed {rec['seed']}: best {b + 1} ({f[b]:.3f}) "
              + " ".join(f"{k}={v}" for k, v in sizes.items()), file=sys.stderr, flush=True)
    seeds = sorted({r["seed"] for r in recs})
    lines = ["| task | rule | " + " | ".join(f"seed {s}" for s in seeds) + " | mean, seeds 0-2 | seeds 3-5 | max |",
             "|---|---|" + "---|" * (len(seeds) + 3)]
    for task, rules in table.items():
        # the curve's best: F1 @ size per seed; then each rule: gap @ size kept per seed
        lines.append(f"| {task} | best on curve | "
                     + " | ".join(f"{best[(task, s)][1]:.3f} @ {best[(task, s)][0]:,}" if (task, s) in best
                                  else "n/a" for s in seeds) + " | | | |")
        for rule, per in rules.items():
            gaps = [per[s][1] if s in per else float("nan") for s in seeds]
            lo = [g for s, g in zip(seeds, gaps, strict=True) if s <= 2]
            hi = [g for s, g in zip(seeds, gaps, strict=True) if s >= 3]
            lines.append(f"| {task} | {rule} | "
                         + " | ".join(f"{per[s][1]:.3f} @ {per[s][0]:,}" if s in per else "n/a" for s in seeds)
                         + f" | {np.mean(lo):.3f} | {np.mean(hi) if hi else float('nan'):.3f} | {max(gaps):.3f} |")
    print("\n".join(lines))
    if extra:
        print("\n" + "\n".join(f"{k}: {v}" for k, v in extra.items()))
    if args.json:
        args.json.write_text(json.dumps({"best": {f"{k[0]}:{k[1]}": v for k, v in best.items()},
                                         "table": table, "extra": {f"{k[0]}:{k[1]}": v for k, v in extra.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
