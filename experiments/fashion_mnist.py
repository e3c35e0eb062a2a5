"""Fashion-MNIST: select training images for a small unlabeled target, then train on the selection.

The paper's image experiment in miniature. The pool is the Fashion-MNIST training set (60,000 images; 600
in ``--size small``); images are embedded by a PCA of their pixels (50 components, 10 in small) fitted on the
pool. The 10,000 test images are split once (seeded) into a half the targets are drawn from and a half the
evaluation sets are drawn from, so nothing is measured on the images used to select. Three settings:

* ``test`` - the target is 500 test images (uniform over classes); evaluation on 5,000 other test images.
* ``tops`` - class-skewed: 80% of the target comes from the four "tops" classes (T-shirt, pullover, coat,
  shirt; 20% each) and 20% from the other six; the evaluation images have the same skew.
* ``quality`` - a pool of 20,000 training images of which half are corrupted (Gaussian noise, an occluding
  grey patch, or a Gaussian blur, a third each); the target is 500 clean test images; evaluation on clean
  test images. Reported: the share of clean images each method picks.

Each method's picks train the same classifier, ``gioselect.evaluate.downstream_accuracy`` (standardised
features, logistic regression; ``--classifier knn`` for a 5-NN, which the tests use for speed), whose
accuracy on the held-out evaluation images is reported with the two-sided distribution yardsticks of
``gioselect.evaluate.evaluate_selection``. Oracle: random pool images drawn with the evaluation set's class
proportions (``quality``: random clean pool images) - it uses the labels, which GIO never sees. The methods
are described in ``experiments/common.py``.

Data: the Debian package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``), which
puts the IDX files in ``/usr/share/datasets/fashion-mnist``; ``--data-dir`` points elsewhere.

Usage: ``python experiments/fashion_mnist.py --size full [--seed 0] [--out experiments/results]``
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
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

from gioselect.embed import ImagePCA, load_idx_labels, load_images
from gioselect.evaluate import evaluate_selection, full_pool

NAME = "fashion_mnist"
DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "apt-get install -y dataset-fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
TOPS = (0, 2, 4, 6)
CORRUPTIONS = ("noise", "occlusion", "blur")
CONFIG = {
    "small": {"pool": 600, "mix_pool": 600, "pca": 10, "target": 80, "eval": 300, "eval_tops": 240, "seeds": 2},
    "full": {"pool": 60000, "mix_pool": 20000, "pca": 50, "target": 500, "eval": 5000, "eval_tops": 2000,
             "seeds": 5},
}
logger = logging.getLogger("experiments.fashion_mnist")


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------
def find_data(data_dir: Path | None = None) -> Path | None:
    """The folder holding the four Fashion-MNIST IDX files, or None when they are not there."""
    d = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return d if all((d / f).is_file() for f in FILES.values()) else None


def load_data(data_dir: Path) -> dict[str, np.ndarray]:
    """Train/test images (uint8, (N, 28, 28)) and labels (int64)."""
    return {
        "xtr": load_images(data_dir / FILES["train_images"]), "ytr": load_idx_labels(data_dir / FILES["train_labels"]),
        "xte": load_images(data_dir / FILES["test_images"]), "yte": load_idx_labels(data_dir / FILES["test_labels"]),
    }


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def blur(images: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Separable Gaussian blur of float images (N, H, W), edges padded by reflection."""
    k = _gauss_kernel(sigma)
    r = (k.size - 1) // 2
    out = images.astype(np.float32)
    for axis in (1, 2):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for j, w in enumerate(k):
            sl = [slice(None)] * 3
            sl[axis] = slice(j, j + n)
            acc += np.float32(w) * padded[tuple(sl)]
        out = acc
    return out


def corrupt(images: np.ndarray, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Corrupt float images in [0, 1] (N, 28, 28): ``kinds`` holds 0 noise, 1 occlusion, 2 blur per image.

    noise: additive Gaussian, std 0.35, clipped to [0, 1]; occlusion: a 14x14 grey (0.5) square at a random
    position; blur: Gaussian, sigma 1.5 pixels.
    """
    out = images.astype(np.float32, copy=True)
    _, h, w = out.shape
    noise = kinds == 0
    out[noise] = np.clip(out[noise] + rng.normal(0.0, 0.35, size=out[noise].shape), 0.0, 1.0)
    for i in np.flatnonzero(kinds == 1):
        r0, c0 = rng.integers(0, h - 14 + 1), rng.integers(0, w - 14 + 1)
        out[i, r0:r0 + 14, c0:c0 + 14] = 0.5
    bl = kinds == 2
    if bl.any():
        out[bl] = blur(out[bl])
    return out


def class_sample(rows: np.ndarray, labels: np.ndarray, weights: Sequence[float], n: int,
                 rng: np.random.Generator) -> np.ndarray:
    """About ``n`` of ``rows`` drawn without replacement with class ``c`` at share ``weights[c]`` (sorted)."""
    w = np.asarray(weights, dtype=np.float64)
    counts = np.floor(w / w.sum() * n).astype(int)
    counts[np.argsort(-(w / w.sum() * n - counts))[: n - counts.sum()]] += 1  # largest remainders
    out = []
    for c, m in enumerate(counts):
        cand = rows[labels[rows] == c]
        if m > cand.size:
            logger.warning("class %d: wanted %d rows, only %d available", c, m, cand.size)
        out.append(rng.choice(cand, size=min(m, cand.size), replace=False))
    return np.sort(np.concatenate(out)).astype(np.int64)


def tops_weights() -> list[float]:
    """Class shares of the skewed target: 0.2 for each of the four tops, 0.2 / 6 for each other class."""
    return [0.2 if c in TOPS else 0.2 / 6 for c in range(len(CLASSES))]


# ---------------------------------------------------------------------------------------------------------
# one setting
# ---------------------------------------------------------------------------------------------------------
def _measure_factory(eval_x: np.ndarray, eval_y: np.ndarray, seed: int, kinds: np.ndarray | None = None,
                     model: str = "logreg") -> Callable[[np.ndarray, np.ndarray, np.ndarray], dict]:
    """measure(features, labels, indices): accuracy on the evaluation images and the distribution yardsticks.

    With ``kinds`` (one per pool row: -1 clean, else the index of the corruption) also the clean share and the
    share of each corruption among the picks.
    """
    def measure(feats: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
        r = evaluate_selection(feats, idx, eval_x, labels=labels, test_x=eval_x, test_y=eval_y,
                               target_labels=eval_y, seed=seed, model=model)
        out = {key: r[key] for key in ("size", "downstream_accuracy", "kl_target_sel", "kl_sel_target", "mmd2",
                                       "energy", "coverage", "label_tv")}
        out["class_shares"] = [float(r["label_proportions"].get(c, 0.0)) for c in range(len(CLASSES))]
        if kinds is not None:
            k = kinds[idx]
            out["clean_share"] = float(np.mean(k < 0)) if idx.size else float("nan")
            out["corruption_shares"] = [float(np.mean(k == j)) if idx.size else float("nan")
                                        for j in range(len(CORRUPTIONS))]
        return out
    return measure


def run_setting(name: str, pool: np.ndarray, pool_y: np.ndarray, target: np.ndarray, eval_x: np.ndarray,
                eval_y: np.ndarray, oracle_rows: Callable[[int, np.random.Generator], np.ndarray], seed: int,
                seeds: Sequence[int], kinds: np.ndarray | None = None, model: str = "logreg") -> dict[str, Any]:
    """All methods on one setting: each GIO variant at its own size with the baselines at that budget."""
    t0 = time.monotonic()
    meas = _measure_factory(eval_x, eval_y, seed, kinds, model)

    def measure(feats: np.ndarray, idx: np.ndarray) -> dict[str, Any]:
        return meas(feats, pool_y, idx)

    def oracle(budget: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        return pool, oracle_rows(budget, np.random.default_rng(10_000 + s))

    out: dict[str, Any] = {"setting": name, "pool_size": int(pool.shape[0]), "target_size": int(target.shape[0]),
                           "eval_size": int(eval_x.shape[0]),
                           "eval_class_shares": np.bincount(eval_y, minlength=len(CLASSES)) / eval_y.size,
                           "variants": {}}
    if kinds is not None:
        out["pool_clean_share"] = float(np.mean(kinds < 0))
    for variant in gio_variants(unit_norm=False):
        idx, info = run_gio(pool, target, variant, seed)
        block = {"budget": int(idx.size), "gio": {**measure(pool, idx), "run": info},
                 **compare_at_budget(pool, target, int(idx.size), measure, seeds=seeds, oracle=oracle)}
        if kinds is not None:  # a diagnostic: how clean is the ball of this size around the target's mean?
            d2 = ((pool.astype(np.float64) - target.astype(np.float64).mean(axis=0)) ** 2).sum(axis=1)
            ball = np.argsort(d2, kind="stable")[: idx.size]
            block["nearest_to_target_mean"] = {"size": int(idx.size),
                                               "clean_share": float(np.mean(kinds[ball] < 0)) if idx.size else None,
                                               "corruption_shares": [float(np.mean(kinds[ball] == j)) if idx.size
                                                                     else None for j in range(len(CORRUPTIONS))]}
        out["variants"][variant.name] = block
        logger.info("%s / %s: budget %d, accuracy gio %s random %s", name, variant.name, idx.size,
                    fmt(block["gio"], "downstream_accuracy"), fmt(block["random"], "downstream_accuracy"))
    out["full"] = measure(pool, full_pool(pool.shape[0]))
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------
METHODS = ("gio", "random", "knn", "herding", "oracle")


def table(setting: dict[str, Any]) -> str:
    """Markdown table of one setting: a row per (variant, method), plus the full pool."""
    quality = "pool_clean_share" in setting
    head = ["GIO setting", "method", "size", "test accuracy"] + (["clean share"] if quality else []) + [
        "KL(target‖sel)", "KL(sel‖target)", "MMD²", "class TV"]
    rows = []
    for vname, block in setting["variants"].items():
        for m in METHODS:
            e = block.get(m)
            if e is None:
                continue
            rows.append([vname, m, fmt(e, "size", 0), fmt(e, "downstream_accuracy", pct=True)]
                        + ([fmt(e, "clean_share", pct=True)] if quality else [])
                        + [fmt(e, "kl_target_sel", 2), fmt(e, "kl_sel_target", 2), fmt(e, "mmd2", 4),
                           fmt(e, "label_tv", 3)])
    f = setting["full"]
    rows.append(["-", "full", fmt(f, "size", 0), fmt(f, "downstream_accuracy", pct=True)]
                + ([fmt(f, "clean_share", pct=True)] if quality else [])
                + [fmt(f, "kl_target_sel", 2), fmt(f, "kl_sel_target", 2), fmt(f, "mmd2", 4), fmt(f, "label_tv", 3)])
    return markdown_table(head, rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Accuracy per method (one panel per setting and GIO variant) and class/clean composition."""
    plt = pyplot()
    settings = results["settings"]
    fig, axes = plt.subplots(len(settings), 3, figsize=(15, 3.6 * len(settings)), squeeze=False)
    colors = {"gio": "tab:red", "random": "tab:gray", "knn": "tab:blue", "herding": "tab:green",
              "oracle": "tab:purple", "full": "black"}
    for r, (sname, st) in enumerate(settings.items()):
        for c, (vname, block) in enumerate(st["variants"].items()):
            ax = axes[r][c]
            names = [m for m in METHODS if m in block] + ["full"]
            entries = [block[m] for m in METHODS if m in block] + [st["full"]]
            vals = [value_of(e, "downstream_accuracy") for e in entries]
            ax.bar(names, [v[0] for v in vals], yerr=[v[1] or 0.0 for v in vals],
                   color=[colors[n] for n in names], capsize=3)
            lo = min(v[0] for v in vals if np.isfinite(v[0]))
            ax.set_ylim(max(0.0, lo - 0.1), 1.0)
            ax.set_title(f"{sname}: {vname} (budget {block['budget']})", fontsize=10)
            ax.set_ylabel("test accuracy")
        ax = axes[r][2]
        if "pool_clean_share" in st:
            labels, vals = [], []
            for vname, block in st["variants"].items():
                for m in ("gio", "random", "knn", "herding"):
                    labels.append(f"{m}\n({vname})" if m == "gio" else f"{m}\n@{vname}")
                    vals.append(value_of(block[m], "clean_share")[0])
            ax.bar(labels, vals, color=[colors[lab.split("\n")[0]] for lab in labels])
            ax.axhline(st["pool_clean_share"], color="black", ls="--", lw=1, label="pool")
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of clean images picked")
            ax.tick_params(axis="x", labelsize=7, labelrotation=30)
            ax.legend(fontsize=8)
            ax.set_title(f"{sname}: clean share", fontsize=10)
        else:
            x = np.arange(len(CLASSES))
            ax.plot(x, st["eval_class_shares"], "k--", label="evaluation set")
            for vname, block in st["variants"].items():
                ax.plot(x, block["gio"]["class_shares"], marker="o", label=vname)
            first = next(iter(st["variants"].values()))
            ax.plot(x, first["random"]["class_shares"]["mean"], color="tab:gray", label="random")
            ax.set_xticks(x, [c.split("/")[0][:7] for c in CLASSES], rotation=45, fontsize=7)
            ax.set_ylabel("class share of the picks")
            ax.legend(fontsize=8)
            ax.set_title(f"{sname}: class composition", fontsize=10)
    fig.suptitle(f"Fashion-MNIST, size {results['size']}, seed {results['seed']}")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = make_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=None,
                    help=f"folder of the IDX files (default {DEFAULT_DATA_DIR}, from `{INSTALL_HINT}`)")
    ap.add_argument("--classifier", choices=("logreg", "knn"), default="logreg",
                    help="the downstream model (gioselect.evaluate.downstream_accuracy); default logreg")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    started = time.monotonic()
    data_dir = find_data(args.data_dir)
    if data_dir is None:
        print(f"Fashion-MNIST not found in {args.data_dir or DEFAULT_DATA_DIR}; install it with "
              f"`{INSTALL_HINT}` (Debian/Ubuntu) or pass --data-dir", file=sys.stderr)
        return 2
    cfg = CONFIG[args.size]
    seeds = seeds_for(args.seed, cfg["seeds"])
    rng = np.random.default_rng(args.seed)
    d = load_data(data_dir)
    xtr, ytr, xte, yte = d["xtr"], d["ytr"], d["xte"], d["yte"]
    perm = rng.permutation(xte.shape[0])
    half = xte.shape[0] // 2
    src_target, src_eval = np.sort(perm[:half]), np.sort(perm[half:])

    # Settings "test" and "tops": one pool, one PCA.
    pool_rows = np.arange(xtr.shape[0]) if cfg["pool"] >= xtr.shape[0] else np.sort(
        rng.choice(xtr.shape[0], size=cfg["pool"], replace=False))
    pca = ImagePCA(cfg["pca"], seed=args.seed, fit_rows=5000).fit(xtr[pool_rows])
    pool, pool_y = pca.transform(xtr[pool_rows]), ytr[pool_rows]
    test_f = pca.transform(xte)
    settings: dict[str, Any] = {}

    uniform = [0.1] * len(CLASSES)
    tgt = np.sort(rng.choice(src_target, size=cfg["target"], replace=False))
    ev = np.sort(rng.choice(src_eval, size=cfg["eval"], replace=False))

    def stratified(weights: Sequence[float]) -> Callable[[int, np.random.Generator], np.ndarray]:
        def draw(budget: int, g: np.random.Generator) -> np.ndarray:
            return class_sample(np.arange(pool.shape[0]), pool_y, weights, budget, g)
        return draw

    settings["test"] = run_setting("test", pool, pool_y, test_f[tgt], test_f[ev], yte[ev], stratified(uniform),
                                   args.seed, seeds, model=args.classifier)
    w = tops_weights()
    tgt = class_sample(src_target, yte, w, cfg["target"], rng)
    ev = class_sample(src_eval, yte, w, cfg["eval_tops"], rng)
    settings["tops"] = run_setting("tops", pool, pool_y, test_f[tgt], test_f[ev], yte[ev], stratified(w),
                                   args.seed, seeds, model=args.classifier)

    # Setting "quality": half of a fresh pool corrupted; PCA fitted on the mixed pool.
    mix_rows = np.sort(rng.choice(xtr.shape[0], size=cfg["mix_pool"], replace=False))
    imgs = xtr[mix_rows].astype(np.float32) / 255.0
    n_mix = mix_rows.size
    bad = np.zeros(n_mix, dtype=bool)
    bad[rng.permutation(n_mix)[: n_mix // 2]] = True
    kinds = np.full(n_mix, -1)
    kinds[bad] = np.arange(int(bad.sum())) % len(CORRUPTIONS)
    imgs[bad] = corrupt(imgs[bad], kinds[bad], rng)
    mpca = ImagePCA(cfg["pca"], seed=args.seed, fit_rows=5000).fit(imgs)
    mpool, mpool_y = mpca.transform(imgs), ytr[mix_rows]
    mtest = mpca.transform(xte.astype(np.float32) / 255.0)
    tgt = np.sort(rng.choice(src_target, size=cfg["target"], replace=False))
    ev = np.sort(rng.choice(src_eval, size=cfg["eval"], replace=False))
    clean_rows = np.flatnonzero(~bad)

    def clean_oracle(budget: int, g: np.random.Generator) -> np.ndarray:
        return np.sort(g.choice(clean_rows, size=min(budget, clean_rows.size), replace=False))

    settings["quality"] = run_setting("quality", mpool, mpool_y, mtest[tgt], mtest[ev], yte[ev], clean_oracle,
                                      args.seed, seeds, kinds=kinds, model=args.classifier)
    results = {
        **run_header(NAME, args, started),
        "data_dir": str(data_dir), "pca_components": cfg["pca"], "classifier": args.classifier,
        "random_seeds": seeds, "gio_variants": {v.name: v.description for v in gio_variants(unit_norm=False)},
        "corruptions": {"kinds": list(CORRUPTIONS), "noise_std": 0.35, "occlusion": "14x14 grey square",
                        "blur_sigma": 1.5},
        "tops_classes": [CLASSES[c] for c in TOPS], "settings": settings,
    }
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    json_path, png_path = result_paths(args.out, NAME, args.size)
    write_json(json_path, results)
    plot(results, png_path)
    for sname, st in settings.items():
        print(f"\n### {sname}\n")
        print(table(st))
    print(f"\nwrote {json_path} and {png_path} ({results['wall_time_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
