"""Spelling correction in miniature: pick the good (misspelling, correction) pairs from a pool of mixed quality.

The paper's spelling experiment selects synthetic training pairs for a speller with real misspellings as the
target, and reports that 73% of GIO's picks were high-quality pairs against 50-59% for the baselines. Here:

* pool: (misspelled, correct) pairs built from the most frequent English words (PyPI ``wordfreq``, top 20,000,
  alphabetic, 4+ letters). Half are high quality: one realistic edit - a keyboard-adjacent substitution, a
  transposition of neighbouring letters, a deletion, or a doubled letter. Half are garbage: the letters
  scrambled, about half the letters replaced by random ones, or a random string of about the same length.
  20,000 pairs (600 in ``--size small``).
* target: real misspellings, ``codespell``'s dictionary (``codespell_lib/data/dictionary.txt``,
  ``misspelling->correction`` lines with one lower-case alphabetic correction of 4+ letters). 1,000 pairs to
  select with and 1,000 other pairs held out for the distribution yardsticks (100 and 100 in small).
* oracle: random subsets, of the same size, of further codespell pairs (distribution yardsticks only).

Representations (each hashed into fixed-size vectors with crc32, L2-normalised, then projected by a PCA fitted
on the pool to 32 dimensions, 16 in small):

* ``edit`` (the main one): what the edit is, from a ``difflib`` alignment of correct -> misspelled - each
  changed span's operation, its length change, its characters and one character of context on each side,
  plus the number of changed spans, changed characters and the length difference - concatenated with the
  ``ngram`` vector at weight 0.3 so that distinct pairs get distinct vectors. A pair's quality lies in its
  edit, not in its word: this is the representation a speller's data would be judged by.
* ``ngram``: character 1-3-grams of the misspelled word and of the correct word (two halves): a generic
  string representation that knows nothing about edits (the robustness check).

Reported per representation and GIO setting: the share of high-quality pairs among the picks, the mix of edit
kinds, and the KL both ways / MMD to the held-out real misspellings. Methods: see ``experiments/common.py``.

Usage: ``python experiments/speller.py --size full [--seed 0] [--out experiments/results]``
"""

from __future__ import annotations

import difflib
import logging
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    compare_at_budget,
    fmt,
    gio_variants,
    make_parser,
    markdown_table,
    pyplot,
    result_paths,
    run_gio,
    run_header,
    save_figure,
    seeds_for,
    setup_logging,
    value_of,
    write_json,
)

from gioselect.evaluate import evaluate_selection, full_pool

NAME = "speller"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
GOOD_KINDS = ("adjacent-substitution", "transposition", "deletion", "doubling")
BAD_KINDS = ("scramble", "random-letters", "random-string")
KINDS = GOOD_KINDS + BAD_KINDS
REPRESENTATIONS = ("edit", "ngram")
HASH_DIM = 256
NGRAM_WEIGHT_IN_EDIT = 0.3
CONFIG = {
    "small": {"pool": 600, "target": 100, "holdout": 100, "oracle": 600, "dim": 16, "seeds": 2},
    "full": {"pool": 20000, "target": 1000, "holdout": 1000, "oracle": 20000, "dim": 32, "seeds": 5},
}
logger = logging.getLogger("experiments.speller")


# ---------------------------------------------------------------------------------------------------------
# the data
# ---------------------------------------------------------------------------------------------------------
def keyboard_neighbours() -> dict[str, list[str]]:
    """QWERTY neighbours of each letter: left/right on its row and the two touching keys above and below."""
    pos = {c: (r, i) for r, row in enumerate(KEYBOARD) for i, c in enumerate(row)}
    # Rows are staggered: a key touches columns (i-1, i) of the row above and (i, i+1) of the row below on the
    # first two rows; the bottom row sits further right, touching (i, i+1) above.
    touch = {(0, 1): (-1, 0), (1, 0): (0, 1), (1, 2): (-1, 0), (2, 1): (0, 1)}
    out: dict[str, list[str]] = {}
    for c, (r, i) in pos.items():
        nb = []
        for r2 in (r - 1, r, r + 1):
            if not 0 <= r2 < len(KEYBOARD):
                continue
            cols = (i - 1, i + 1) if r2 == r else tuple(i + o for o in touch[(r, r2)])
            nb += [KEYBOARD[r2][j] for j in cols if 0 <= j < len(KEYBOARD[r2])]
        out[c] = nb
    return out


_NEIGHBOURS = keyboard_neighbours()


def load_words(n: int = 20000) -> list[str]:
    """The ``n`` most frequent English words (wordfreq), kept if ASCII, alphabetic and 4+ letters long."""
    try:
        import wordfreq
    except ImportError as exc:
        raise ImportError("the speller experiment needs wordfreq: pip install wordfreq") from exc
    return [w for w in wordfreq.top_n_list("en", n) if w.isascii() and w.isalpha() and len(w) >= 4]


def good_edit(word: str, rng: np.random.Generator) -> tuple[str, str]:
    """One realistic typo of ``word`` and its kind (one of GOOD_KINDS)."""
    kind = GOOD_KINDS[int(rng.integers(len(GOOD_KINDS)))]
    i = int(rng.integers(len(word)))
    if kind == "adjacent-substitution":
        nb = _NEIGHBOURS.get(word[i], list(LETTERS))
        return word[:i] + nb[int(rng.integers(len(nb)))] + word[i + 1:], kind
    if kind == "transposition":
        i = int(rng.integers(len(word) - 1))
        if word[i] == word[i + 1]:  # swapping equal letters changes nothing: drop one instead
            return word[:i] + word[i + 1:], "deletion"
        return word[:i] + word[i + 1] + word[i] + word[i + 2:], kind
    if kind == "deletion":
        return word[:i] + word[i + 1:], kind
    return word[:i] + word[i] + word[i:], kind


def garbage_edit(word: str, rng: np.random.Generator) -> tuple[str, str]:
    """A low-quality "misspelling" of ``word`` and its kind (one of BAD_KINDS)."""
    kind = BAD_KINDS[int(rng.integers(len(BAD_KINDS)))]
    if kind == "scramble":
        return "".join(rng.permutation(list(word))), kind
    if kind == "random-letters":
        chars = list(word)
        for i in rng.choice(len(word), size=max(2, len(word) // 2), replace=False):
            chars[int(i)] = LETTERS[int(rng.integers(26))]
        return "".join(chars), kind
    n = max(3, len(word) + int(rng.integers(-2, 3)))
    return "".join(LETTERS[int(j)] for j in rng.integers(0, 26, size=n)), kind


def build_pool(words: Sequence[str], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` pairs, alternately high quality and garbage (so exactly half of each), then shuffled."""
    pool = []
    for j in range(n):
        word = words[int(rng.integers(len(words)))]
        good = j % 2 == 0
        for _ in range(20):  # an edit can leave the word unchanged (a scramble of "seems"): draw again
            mis, kind = good_edit(word, rng) if good else garbage_edit(word, rng)
            if mis != word:
                break
        pool.append({"mis": mis, "cor": word, "hq": good, "kind": kind})
    return [pool[i] for i in rng.permutation(n)]


def codespell_dictionary() -> Path:
    """Path of codespell's dictionary.txt (ImportError with a hint when codespell is not installed)."""
    try:
        import codespell_lib
    except ImportError as exc:
        raise ImportError("the speller experiment needs codespell's dictionary: pip install codespell") from exc
    return Path(codespell_lib.__file__).parent / "data" / "dictionary.txt"


def codespell_pairs(path: Path | None = None) -> list[tuple[str, str]]:
    """``(misspelling, correction)`` pairs with one lower-case ASCII alphabetic correction of 4+ letters."""
    out = []
    with open(path or codespell_dictionary(), encoding="utf-8") as fh:
        for line in fh:
            mis, sep, cor = line.strip().partition("->")
            if not sep or "," in cor:
                continue
            if (mis.isascii() and cor.isascii() and mis.isalpha() and cor.isalpha() and mis.islower()
                    and cor.islower() and len(cor) >= 4):
                out.append((mis, cor))
    return out


# ---------------------------------------------------------------------------------------------------------
# representations
# ---------------------------------------------------------------------------------------------------------
def _bucket(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) % HASH_DIM


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def edit_tokens(mis: str, cor: str) -> list[str]:
    """Tokens describing the edit that turns ``cor`` into ``mis`` (difflib alignment, no autojunk)."""
    ops = [o for o in difflib.SequenceMatcher(None, cor, mis, autojunk=False).get_opcodes() if o[0] != "equal"]
    toks = []
    changed = 0
    for tag, i1, i2, j1, j2 in ops:
        a, b = cor[i1:i2], mis[j1:j2]
        changed += max(len(a), len(b))
        toks += [tag, f"{tag}:{len(a)}>{len(b)}", f"{tag}:{a}>{b}", f"ctx:{cor[i1 - 1:i1]}[{a}]{cor[i2:i2 + 1]}"]
    toks += [f"spans:{min(len(ops), 5)}"] * 2 + [f"changed:{min(changed, 6)}"] * 2
    toks.append(f"lendiff:{max(-3, min(3, len(mis) - len(cor)))}")
    return toks


def ngram_vector(mis: str, cor: str) -> np.ndarray:
    """Hashed character 1-3-grams of ``^mis$`` and of ``^cor$`` (two halves), L2-normalised."""
    v = np.zeros(2 * HASH_DIM, dtype=np.float32)
    for off, s in ((0, mis), (HASH_DIM, cor)):
        s2 = f"^{s}$"
        for n in (1, 2, 3):
            for i in range(len(s2) - n + 1):
                v[off + _bucket(s2[i:i + n])] += 1.0
    return _unit(v)


def edit_vector(mis: str, cor: str) -> np.ndarray:
    """Hashed edit tokens (L2-normalised) followed by ``NGRAM_WEIGHT_IN_EDIT`` times the ngram vector."""
    v = np.zeros(HASH_DIM, dtype=np.float32)
    for t in edit_tokens(mis, cor):
        v[_bucket(t)] += 1.0
    return np.concatenate([_unit(v), NGRAM_WEIGHT_IN_EDIT * ngram_vector(mis, cor)])


def featurize(pairs: Sequence[tuple[str, str]], representation: str) -> np.ndarray:
    """Raw hashed vectors of ``(misspelled, correct)`` pairs, float32."""
    fn = edit_vector if representation == "edit" else ngram_vector
    return np.stack([fn(m, c) for m, c in pairs]).astype(np.float32)


class PCAProjection:
    """PCA fitted on (a seeded sample of at most 5,000 rows of) the pool's raw vectors."""

    def __init__(self, dim: int, seed: int) -> None:
        self.dim = dim
        self.seed = seed

    def fit(self, x: np.ndarray) -> PCAProjection:
        rng = np.random.default_rng(self.seed)
        sample = x if x.shape[0] <= 5000 else x[np.sort(rng.choice(x.shape[0], size=5000, replace=False))]
        s64 = sample.astype(np.float64)
        self.mean_ = s64.mean(axis=0)
        _, _, vt = np.linalg.svd(s64 - self.mean_, full_matrices=False)
        self.components_ = vt[: self.dim]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float64) - self.mean_) @ self.components_.T).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------------------
def run_representation(rep: str, pool_pairs: list[dict[str, Any]], target: list[tuple[str, str]],
                       holdout: list[tuple[str, str]], oracle_pairs: list[tuple[str, str]], dim: int, seed: int,
                       seeds: Sequence[int]) -> dict[str, Any]:
    """Embed everything in one representation and compare the methods at each GIO variant's budget."""
    t0 = time.monotonic()
    raw_pool = featurize([(p["mis"], p["cor"]) for p in pool_pairs], rep)
    proj = PCAProjection(dim, seed).fit(raw_pool)
    pool = proj.transform(raw_pool)
    tgt = proj.transform(featurize(target, rep))
    hold = proj.transform(featurize(holdout, rep))
    orc = proj.transform(featurize(oracle_pairs, rep))
    hq = np.array([p["hq"] for p in pool_pairs], dtype=bool)
    kind_id = np.array([KINDS.index(p["kind"]) for p in pool_pairs])

    def distribution(feats: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
        r = evaluate_selection(feats, idx, hold, seed=seed)
        return {key: r[key] for key in ("size", "kl_target_sel", "kl_sel_target", "mmd2", "energy", "coverage")}

    def measure(feats: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
        out = distribution(feats, idx)
        out["hq_share"] = float(hq[idx].mean()) if idx.size else float("nan")
        out["kind_shares"] = (np.bincount(kind_id[idx], minlength=len(KINDS)) / max(idx.size, 1)).tolist()
        return out

    def oracle(budget: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.random.default_rng(20_000 + s)
        return orc, np.sort(g.choice(orc.shape[0], size=min(budget, orc.shape[0]), replace=False))

    res: dict[str, Any] = {"representation": rep, "dim": dim, "variants": {}}
    for variant in gio_variants(unit_norm=False):
        idx, info = run_gio(pool, tgt, variant, seed)
        block = {"budget": int(idx.size), "gio": {**measure(pool, idx), "run": info},
                 **compare_at_budget(pool, tgt, int(idx.size), measure, seeds=seeds, oracle=oracle,
                                     oracle_measure=distribution)}
        block["gio"]["examples"] = [f"{pool_pairs[i]['cor']}->{pool_pairs[i]['mis']}" for i in idx[:12]]
        res["variants"][variant.name] = block
        logger.info("%s / %s: budget %d, high-quality share gio %s random %s knn %s", rep, variant.name, idx.size,
                    fmt(block["gio"], "hq_share"), fmt(block["random"], "hq_share"), fmt(block["knn"], "hq_share"))
    res["full"] = measure(pool, full_pool(pool.shape[0]))
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


METHODS = ("gio", "random", "knn", "herding", "oracle")


def table(rep: dict[str, Any]) -> str:
    """Markdown table for one representation."""
    head = ["GIO setting", "method", "size", "high-quality share", "KL(target‖sel)", "KL(sel‖target)", "MMD²",
            "coverage"]
    rows = []
    for vname, block in rep["variants"].items():
        for m in METHODS:
            e = block.get(m)
            if e is not None:
                rows.append([vname, m, fmt(e, "size", 0), fmt(e, "hq_share", pct=True), fmt(e, "kl_target_sel", 2),
                             fmt(e, "kl_sel_target", 2), fmt(e, "mmd2", 4), fmt(e, "coverage", 3)])
    f = rep["full"]
    rows.append(["-", "full", fmt(f, "size", 0), fmt(f, "hq_share", pct=True), fmt(f, "kl_target_sel", 2),
                 fmt(f, "kl_sel_target", 2), fmt(f, "mmd2", 4), fmt(f, "coverage", 3)])
    return markdown_table(head, rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """High-quality share per method, and the mix of edit kinds picked, per representation."""
    plt = pyplot()
    reps = results["representations"]
    fig, axes = plt.subplots(len(reps), 2, figsize=(14, 4 * len(reps)), squeeze=False)
    colors = {"gio": "tab:red", "random": "tab:gray", "knn": "tab:blue", "herding": "tab:green"}
    for r, (rname, rep) in enumerate(reps.items()):
        ax = axes[r][0]
        labels, vals, errs, cols = [], [], [], []
        for vname, block in rep["variants"].items():
            for m in ("gio", "random", "knn", "herding"):
                mean, std = value_of(block[m], "hq_share")
                labels.append(f"{vname}\n(n={block['budget']})" if m == "gio" else f"{m}\n@{vname}")
                vals.append(mean)
                errs.append(std or 0.0)
                cols.append(colors[m])
        ax.bar(labels, vals, yerr=errs, color=cols, capsize=3)
        ax.axhline(0.5, color="black", ls="--", lw=1, label="pool (50%)")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of high-quality pairs picked")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=8)
        ax.set_title(f"representation '{rname}': high-quality share", fontsize=10)
        ax = axes[r][1]
        series = []
        for vname, block in rep["variants"].items():
            series.append((f"gio ({vname})", block["gio"]["kind_shares"]))
            series.append((f"knn @{vname}", block["knn"]["kind_shares"]))
        series.append(("pool", rep["full"]["kind_shares"]))
        bottom = np.zeros(len(series))
        cmap = plt.get_cmap("tab10")
        for k, kind in enumerate(KINDS):
            h = np.array([s[1][k] for s in series])
            ax.bar([s[0] for s in series], h, bottom=bottom, color=cmap(k), label=kind,
                   hatch="//" if kind in BAD_KINDS else None)
            bottom += h
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_title(f"representation '{rname}': edit kinds picked (hatched: garbage)", fontsize=10)
    fig.suptitle(f"Spelling pairs, size {results['size']}, seed {results['seed']}")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.split("\n\n")[0])
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    started = time.monotonic()
    cfg = CONFIG[args.size]
    seeds = seeds_for(args.seed, cfg["seeds"])
    rng = np.random.default_rng(args.seed)
    try:
        words = load_words()
        real = codespell_pairs()
    except ImportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    pool_pairs = build_pool(words, cfg["pool"], rng)
    perm = rng.permutation(len(real))
    n_t, n_h, n_o = cfg["target"], cfg["holdout"], cfg["oracle"]
    target = [real[i] for i in perm[:n_t]]
    holdout = [real[i] for i in perm[n_t:n_t + n_h]]
    oracle_pairs = [real[i] for i in perm[n_t + n_h:n_t + n_h + n_o]]
    reps = {rep: run_representation(rep, pool_pairs, target, holdout, oracle_pairs, cfg["dim"], args.seed, seeds)
            for rep in REPRESENTATIONS}
    results = {
        **run_header(NAME, args, started),
        "words": len(words), "codespell_pairs": len(real), "pool_size": len(pool_pairs),
        "target_size": len(target), "holdout_size": len(holdout), "oracle_source_size": len(oracle_pairs),
        "pool_hq_share": float(np.mean([p["hq"] for p in pool_pairs])), "kinds": list(KINDS),
        "good_kinds": list(GOOD_KINDS), "garbage_kinds": list(BAD_KINDS), "random_seeds": seeds,
        "gio_variants": {v.name: v.description for v in gio_variants(unit_norm=False)},
        "pool_examples": [f"{p['cor']}->{p['mis']} ({p['kind']})" for p in pool_pairs[:10]],
        "target_examples": [f"{c}->{m}" for m, c in target[:10]], "paper": {"gio": 0.73, "baselines": [0.50, 0.59]},
        "representations": reps,
    }
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    json_path, png_path = result_paths(args.out, NAME, args.size)
    write_json(json_path, results)
    plot(results, png_path)
    for rname, rep in reps.items():
        print(f"\n### representation: {rname}\n")
        print(table(rep))
    print(f"\nwrote {json_path} and {png_path} ({results['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
