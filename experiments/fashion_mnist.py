"""Fashion-MNIST: select training images for a small unlabeled target, then train on the selection.

The paper's image experiment in miniature, as three tasks of the benchmark suite (``experiments/suite``; sizes
in ``experiments/suite/tasks.py``): this script runs them with every suite method at the fixed size and at
GIO's own size and writes the suite's JSON and markdown table (``<out>/fashion_mnist_<size>.json`` and
``.md``). The pool is a sample of the training set (10,000 images; 600 in ``--size small``), embedded by a PCA
of the pixels (50 components, 10 in small) fitted on the pool. The 10,000 test images are split (seeded) into
a half the targets are drawn from and a half the evaluation sets are drawn from, so nothing is measured on
the images used to select.

* ``fashion-test`` - the target is 500 test images (uniform over classes).
* ``fashion-tops`` - class-skewed: 80% of the target comes from the four "tops" classes (T-shirt, pullover,
  coat, shirt; 20% each) and 20% from the other six; the evaluation images have the same skew.
* ``fashion-quality`` - half of the pool corrupted (Gaussian noise, an occluding grey patch, or a Gaussian
  blur, a third each; :func:`corrupt`); the target is clean test images. Task number: the clean share.

Task number of the first two: the test accuracy of ``gioselect.evaluate.downstream_accuracy`` (standardised
features, logistic regression) trained on the picks. This module keeps the data pieces the tasks use
(:func:`find_data`, :func:`load_data`, :func:`corrupt`, :func:`class_sample`, :func:`tops_weights`).

Data: the Debian package ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``), which
puts the IDX files in ``/usr/share/datasets/fashion-mnist``; ``--data-dir`` points elsewhere.

Usage: ``python experiments/fashion_mnist.py --size full [--seed 0] [--seeds 3] [--out experiments/results]``
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gioselect.embed import load_idx_labels, load_images

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
# the suite's Fashion-MNIST tasks
# ---------------------------------------------------------------------------------------------------------
TASKS = {"small": ("fashion-test", "fashion-tops", "fashion-quality"),
         "full": ("fashion-test", "fashion-tops", "fashion-quality")}


def main(argv: list[str] | None = None) -> int:
    """The suite's three Fashion-MNIST tasks, every method (``--data-dir``: where the IDX files are)."""
    from suite import tasks as suite_tasks
    from suite.cli import run_experiment

    def extra(ap: Any) -> None:
        ap.add_argument("--data-dir", type=Path, default=None,
                        help=f"folder of the IDX files (default {DEFAULT_DATA_DIR}, from `{INSTALL_HINT}`)")

    def check(args: Any) -> int | None:
        if find_data(args.data_dir) is None:
            print(f"Fashion-MNIST not found in {args.data_dir or DEFAULT_DATA_DIR}; install it with "
                  f"`{INSTALL_HINT}` (Debian/Ubuntu) or pass --data-dir", file=sys.stderr)
            return 2
        suite_tasks.FASHION_DATA_DIR = args.data_dir
        return None

    return run_experiment(NAME, __doc__.split("\n\n")[0], TASKS, argv, check=check, extra_args=extra)


if __name__ == "__main__":
    sys.exit(main())
