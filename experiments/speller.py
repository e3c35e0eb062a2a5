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

This script is a front end of the benchmark suite (``experiments/suite``): it runs the suite's tasks ``speller``
(the ``edit`` representation) and ``speller-ngram`` (the ``ngram`` one), built from the pieces above
(:func:`build_pool`, :func:`featurize`, :class:`PCAProjection`; sizes in ``experiments/suite/tasks.py``), with
every suite method at the fixed size and at GIO's own size, and writes the suite's JSON and markdown table
(``<out>/speller_<size>.json`` and ``.md``). Task number: the share of high-quality pairs among the picks.

Usage: ``python experiments/speller.py --size full [--seed 0] [--seeds 3] [--out experiments/results]``
"""

from __future__ import annotations

import difflib
import logging
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

NAME = "speller"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
GOOD_KINDS = ("adjacent-substitution", "transposition", "deletion", "doubling")
BAD_KINDS = ("scramble", "random-letters", "random-string")
KINDS = GOOD_KINDS + BAD_KINDS
REPRESENTATIONS = ("edit", "ngram")
HASH_DIM = 256
NGRAM_WEIGHT_IN_EDIT = 0.3
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
TASKS = {"small": ("speller", "speller-ngram"), "full": ("speller", "speller-ngram")}


def main(argv: list[str] | None = None) -> int:
    """The suite's spelling tasks (``speller``: edit features; ``speller-ngram``: character n-grams)."""
    from suite.cli import run_experiment

    def check(args: Any) -> int | None:
        try:
            load_words()
            codespell_pairs()
        except ImportError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return None

    return run_experiment(NAME, __doc__.split("\n\n")[0], TASKS, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
