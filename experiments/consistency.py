"""The paper's three consistency checks on its 2-D set-ups, over several seeds, with the numbers.

* self-consistency (``gioselect.checks.self_consistency``): pool and target are two draws of 100 points from
  the reference README's Gaussian (mean (3, 4), covariance 0.5 I); GIO should lower its objective and pick
  most of the pool (the reference picks 94 of 100 on its README example).
* negative consistency (``gioselect.checks.negative_consistency``): the pool is the same Gaussian moved to
  (300, 400); GIO should pick nothing (the reference picks 0).
* quantisation consistency (``gioselect.quantize.quantization_consistency``): KL(target || K-means centroids
  of the target) for several K, beside KL(target || a random subset of the target of the same size); the
  script also reports the reverse direction, KL(centroids || target), for both.

The first two run with the README's start set (100 uniform points in [0, 8]^2, not normalised), as in the
reference, and again with the library's default start (20 uniform points scaled to unit norm), to show what
the start set does; each with the benchmark suite's GIO modes ``gio-mean`` (``v_init="mean"``, the
reference's) and ``gio-jump`` (``v_init="jump"``), taken from the suite's method registry
(``suite.GIO_MODES``). GIO runs until its ``increase`` criterion fires (no max_iter). Seeds as in the suite's
front ends: ``--seed`` the first, ``--seeds`` how many (default 10 full, 2 small: 0-9 and 0-1). The checks are
pass/fail with numbers, not a comparison of methods at one size, so they are not suite tasks and have no rank
table; the tables are written with the suite's table writer (``common.markdown_table``) to
``<out>/consistency_<size>.md`` beside the JSON and the plot.

Usage: ``python experiments/consistency.py --size full [--seed 0] [--seeds 10] [--out experiments/results]``
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    fmt,
    make_parser,
    markdown_table,
    pyplot,
    result_paths,
    run_header,
    save_figure,
    setup_logging,
    summarize,
    write_json,
)

from gioselect import GIOSelector
from gioselect.checks import negative_consistency, readme_gaussians, self_consistency
from gioselect.evaluate import kl_both_ways
from gioselect.quantize import quantization_consistency, quantize_array

NAME = "consistency"
# The reference README's start set (as gioselect.checks uses it): 100 uniform points in [0, 8]^2, not normalised.
README_START = {"uniform_low": 0.0, "uniform_high": 8.0, "uniform_start_size": 100, "normalize": False}
V_INITS = ("mean", "jump")
#: The suite's GIO mode of each v_init (suite.GIO_MODES).
MODE_OF = {"mean": "gio-mean", "jump": "gio-jump"}
CONFIG = {
    "small": {"seeds": 2, "quant_n": 200, "quant_k": (10, 40)},
    "full": {"seeds": 10, "quant_n": 1000, "quant_k": (10, 30, 100, 300)},
}
logger = logging.getLogger("experiments.consistency")


def readme_data(seed: int, far: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(pool, target) exactly as the checks build them for ``seed``: the pool moved to (300, 400) if ``far``."""
    mean = (300.0, 400.0) if far else (3.0, 4.0)
    return readme_gaussians(100, mean=mean, seed=seed + 5), readme_gaussians(100, seed=seed + 1)


def mode_params() -> dict[str, dict[str, Any]]:
    """``{v_init: the GIO keyword arguments of the suite's mode}`` (``gio-mean``, ``gio-jump``)."""
    from suite import GIO_MODES

    modes = {name: dict(params) for name, params, _ in GIO_MODES}
    out = {v: modes[MODE_OF[v]] for v in V_INITS}
    for v, params in out.items():
        if params != {"v_init": v}:
            raise ValueError(f"suite mode {MODE_OF[v]} is {params}, expected v_init={v!r} alone")
    return out


def run_checks(seeds: list[int]) -> dict[str, Any]:
    """Self and negative consistency per seed: README or default start, the suite's gio-mean or gio-jump."""
    out: dict[str, Any] = {}
    params = mode_params()
    for v_init, start_name, check in itertools.product(V_INITS, ("readme_start", "default_start"),
                                                        ("self", "negative")):
        fn = self_consistency if check == "self" else negative_consistency
        runs = []
        for s in seeds:
            if start_name == "readme_start":
                res = fn(seed=s, **params[v_init])
            else:
                pool, target = readme_data(s, far=check == "negative")
                res = fn(pool, target, seed=s, **params[v_init])
            m = {k: v for k, v in res.metrics.items() if k != "kl_trace"}
            runs.append({"seed": s, "passed": res.passed, **m, "kl_trace": res.metrics["kl_trace"],
                         "message": res.message})
        key = f"{check}_{start_name}_{v_init}"
        out[key] = {"check": check, "start": start_name, "v_init": v_init, "method": MODE_OF[v_init], "runs": runs,
                    "passed": sum(r["passed"] for r in runs),
                    "summary": summarize([{k: v for k, v in r.items() if k in ("picked", "share", "initial_kl",
                                                                                  "final_kl")} for r in runs])}
        logger.info("%s: %d/%d passed", key, out[key]["passed"], len(runs))
    return out


def run_quantization(seeds: list[int], n: int, ks: tuple[int, ...]) -> dict[str, Any]:
    """KL both ways of the target's K-means centroids and of random target subsets of the same size."""
    out: dict[str, Any] = {}
    for k in ks:
        runs = []
        for s in seeds:
            target = readme_gaussians(n, seed=s + 1)
            chk = quantization_consistency(target, k, seed=s)
            cents = quantize_array(target, k, seed=s).centroids
            rng = np.random.default_rng(s)
            subset = target[rng.choice(n, size=cents.shape[0], replace=False)]
            kc, kr = kl_both_ways(target, cents), kl_both_ways(target, subset)
            runs.append({"seed": s, "passed": chk.passed, "clusters": int(cents.shape[0]),
                         "kl_target_centroids": kc["kl_target_sel"], "kl_centroids_target": kc["kl_sel_target"],
                         "kl_target_subset": kr["kl_target_sel"], "kl_subset_target": kr["kl_sel_target"],
                         "check_kl_centroids": chk.metrics["kl_centroids"]})
        out[str(k)] = {"runs": runs, "passed": sum(r["passed"] for r in runs), "summary": summarize(
            [{key: v for key, v in r.items() if key not in ("seed", "passed")} for r in runs])}
    return out


def tables(results: dict[str, Any]) -> str:
    """Markdown tables: the pick checks and the quantisation check."""
    rows = []
    for res in results["checks"].values():
        s = res["summary"]
        rows.append([res["check"], res["start"].replace("_start", ""), f"{res['v_init']} ({MODE_OF[res['v_init']]})",
                     f"{res['passed']}/{len(res['runs'])}",
                     fmt(s, "picked", 1), fmt(s, "initial_kl", 3), fmt(s, "final_kl", 3),
                     ", ".join(sorted({r["stop_reason"] for r in res["runs"]}))])
    t1 = markdown_table(["check", "start set", "v_init", "passed", "picked of 100", "objective at start",
                         "objective at end", "stop"], rows)
    rows = []
    for k, res in results["quantization"].items():
        s = res["summary"]
        rows.append([k, fmt(s, "clusters", 0), f"{res['passed']}/{len(res['runs'])}",
                     fmt(s, "kl_target_centroids", 3), fmt(s, "kl_target_subset", 3),
                     fmt(s, "kl_centroids_target", 3), fmt(s, "kl_subset_target", 3)])
    t2 = markdown_table(["K", "clusters", "passed (KL ≤ 1)", "KL(target‖centroids)", "KL(target‖random subset)",
                         "KL(centroids‖target)", "KL(random subset‖target)"], rows)
    return t1 + "\n\n" + t2


def plot(results: dict[str, Any], path: Path) -> Path:
    """Self-consistency picks (seed of the run), KL traces, the negative set-up, and KL vs K."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.6))
    seed = results["seed"]
    pool, target = readme_data(seed)
    sel = GIOSelector(max_iter=None, seed=seed, v_init="mean", **README_START).fit(pool, target)
    picked = np.zeros(pool.shape[0], dtype=bool)
    picked[sel.selected_indices_] = True
    ax = axes[0]
    ax.scatter(*target.T, s=12, c="tab:blue", label="target")
    ax.scatter(*pool[~picked].T, s=22, facecolors="none", edgecolors="tab:gray", label="pool, not picked")
    ax.scatter(*pool[picked].T, s=22, marker="x", c="tab:red", label=f"picked ({picked.sum()})")
    ax.set_title(f"self-consistency, seed {seed}, README start, v_init=mean", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, style in (("self_readme_start_mean", "-"), ("self_readme_start_jump", "--"),
                       ("self_default_start_mean", ":")):
        for i, r in enumerate(results["checks"][key]["runs"]):
            trace = [r["initial_kl"], *r["kl_trace"]]
            ax.plot(range(len(trace)), trace, style, color=plt.get_cmap("tab10")(i % 10), lw=1,
                    label=key.replace("self_", "").replace("_start_", " start, ") if i == 0 else None)
    ax.set_xlabel("picks")
    ax.set_ylabel("relaxed KL objective")
    ax.set_title("self-consistency: objective per pick, every seed", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    far, tgt = readme_data(seed, far=True)
    neg = results["checks"]["negative_readme_start_mean"]["runs"][0]
    ax.scatter(*tgt.T, s=12, c="tab:blue", label="target at (3, 4)")
    ax.scatter(*far.T, s=12, c="tab:gray", label="pool at (300, 400)")
    ax.set_xscale("symlog")
    ax.set_yscale("symlog")
    ax.set_title(f"negative consistency, seed {seed}: picked {neg['picked']}", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[3]
    ks = [int(k) for k in results["quantization"]]
    for key, label, style in (("kl_target_centroids", "KL(target‖centroids)", "o-"),
                              ("kl_target_subset", "KL(target‖random subset)", "s--"),
                              ("kl_centroids_target", "KL(centroids‖target)", "^-"),
                              ("kl_subset_target", "KL(random subset‖target)", "v--")):
        m = [results["quantization"][str(k)]["summary"][key]["mean"] for k in ks]
        e = [results["quantization"][str(k)]["summary"][key]["std"] for k in ks]
        ax.errorbar(ks, m, yerr=e, fmt=style, capsize=3, label=label)
    ax.set_xscale("log")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("K (clusters)")
    ax.set_title(f"quantisation consistency (target of {results['quant_n']})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=None, help="how many seeds (default: 10 full, 2 small)")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    started = time.monotonic()
    cfg = CONFIG[args.size]
    seeds = [args.seed + i for i in range(args.seeds if args.seeds is not None else cfg["seeds"])]
    results = {**run_header(NAME, args, started), "seeds": seeds, "quant_n": cfg["quant_n"],
               "readme_start": README_START, "checks": run_checks(seeds),
               "quantization": run_quantization(seeds, cfg["quant_n"], cfg["quant_k"])}
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    if args.seeds is not None:
        results["command"] += f" --seeds {args.seeds}"
    json_path, png_path = result_paths(args.out, NAME, args.size)
    write_json(json_path, results)
    plot(results, png_path)
    md = tables(results)
    md_path = args.out / f"{NAME}_{args.size}.md"
    md_path.write_text(f"# {NAME} ({args.size})\n\nCommand: `{results['command']}`; seeds {seeds}; "
                       f"{results['wall_time_s']} s.\n\n{md}\n", encoding="utf-8")
    print(md)
    print(f"\nwrote {json_path}, {md_path} and {png_path} ({results['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
