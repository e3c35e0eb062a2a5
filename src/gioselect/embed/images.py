"""Images to embeddings: readers (:func:`load_images`, :func:`load_idx_labels`), scaled pixel vectors
(:func:`image_embeddings`) and the optional :class:`ImagePCA` (see :mod:`gioselect.embed`).
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, InvalidTypeError, MissingDependencyError
from ..validation import IMAGE_SUFFIXES, check_int

__all__ = ["ImagePCA", "image_embeddings", "load_idx_labels", "load_images"]

logger = logging.getLogger(__name__)


_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gzip(path: Path) -> Any:
    """Open a file for binary reading, decompressing on the fly when it starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_idx(path: Path, expect_ndim: tuple[int, ...], what: str) -> np.ndarray:
    """Read an IDX file (plain or gzip); ``expect_ndim`` are the accepted numbers of dimensions."""
    try:
        with _open_maybe_gzip(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
                raise InvalidInputError(
                    f"{path}: not an IDX file (first bytes {header.hex() or 'empty'}; expected magic "
                    f"0x00000803 for images or 0x00000801 for labels)"
                )
            dtype = _IDX_DTYPES[header[2]]
            ndim = header[3]
            magic = int.from_bytes(header, "big")
            if ndim not in expect_ndim:
                kind = {1: "a label file", 3: "an image file"}.get(ndim, f"a {ndim}-D array")
                want = " or ".join(f"0x{(header[2] << 8) | d:08x}" for d in expect_ndim)
                raise InvalidInputError(
                    f"{path}: IDX magic 0x{magic:08x} is {kind} ({ndim} dimensions); expected {what} "
                    f"(magic {want})"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise InvalidInputError(f"{path}: IDX header is truncated (dimension sizes missing)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            expected = dtype.itemsize
            for d in dims:  # Python ints: a forged header cannot overflow
                expected *= d
            chunks, got = [], 0
            while got < expected:  # bounded reads: a header announcing terabytes fails as truncated
                chunk = f.read(min(expected - got, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{path}: cannot read IDX data ({type(exc).__name__}: {exc})") from exc
    shape = " x ".join(str(d) for d in dims)
    if len(data) < expected:
        raise InvalidInputError(
            f"{path}: IDX file is truncated: its header says {shape} values of {dtype.name} ({expected} bytes), "
            f"but only {len(data)} data bytes follow"
        )
    if extra:
        raise InvalidInputError(
            f"{path}: IDX file has bytes after the {shape} values its header announces (wrong header?)"
        )
    try:
        arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    except ValueError as exc:  # e.g. 0 x 4294967295: no data, but too many dimensions for an array
        raise InvalidInputError(f"{path}: IDX header announces an impossible shape {shape} ({exc})") from exc
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _load_image_folder(path: Path) -> np.ndarray:
    """Read every PNG/JPEG file of a folder, sorted by file name, into one (N, H, W[, C]) array."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading image folders needs Pillow, which could not be imported ({exc}); install it with: "
            "pip install pillow"
        ) from exc
    files = sorted(
        p for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise InvalidInputError(f"{path}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    out: np.ndarray | None = None
    first = files[0]
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:
                if img.mode == "P":  # palette indices are not intensities
                    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                elif img.mode == "1":
                    img = img.convert("L")
                elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    img = img.convert("RGB")
                a = np.asarray(img)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InvalidInputError(f"{file}: cannot read image ({type(exc).__name__}: {exc})") from exc
        if out is None:
            out = np.empty((len(files), *a.shape), dtype=a.dtype)
        elif a.shape != out.shape[1:] or a.dtype != out.dtype:
            raise InvalidInputError(
                f"{file}: image is {_describe(a)}, but {first.name} (the first image) is "
                f"{_describe(out[0])}; all images in {path} must have the same size and channels"
            )
        out[i] = a
    assert out is not None
    logger.info("read %d images of shape %s from %s", out.shape[0], out.shape[1:], path)
    return out


def _describe(a: np.ndarray) -> str:
    """Short description of an image array's size, channels and dtype for messages."""
    size = f"{a.shape[1]}x{a.shape[0]} (width x height)"
    chans = f"{a.shape[2]} channels" if a.ndim == 3 else "grayscale"
    return f"{size}, {chans}, {a.dtype}"


def load_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a set of images into one array.

    Parameters
    ----------
    path : str or path-like
        One of

        * an IDX image file (magic ``0x00000803``, as in MNIST / Fashion-MNIST), plain or gzip-compressed
          (recognised by content, whatever the file name);
        * a ``.npy`` file holding an array of shape (N, H, W) or (N, H, W, C) (read with ``allow_pickle=False``);
        * a folder of PNG/JPEG files (``.png``, ``.jpg``, ``.jpeg``; other and hidden files are ignored),
          read in file-name order; all must have the same size and channels.

    Returns
    -------
    numpy.ndarray of shape (N, H, W) or (N, H, W, C)
        Pixels in the stored dtype (``uint8`` for IDX and 8-bit images).

    Raises
    ------
    InvalidInputError
        Missing path, unknown format, bad IDX header or truncated data, wrong array rank, unreadable image or an
        image of a different size (the file is named).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidInputError(f"{p}: no such file or folder (expected IDX images, a .npy array or an image folder)")
    if p.is_dir():
        return _load_image_folder(p)
    with open(p, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidInputError(f"{p}: cannot read the .npy array ({exc})") from exc
        if arr.ndim not in (3, 4):
            raise InvalidInputError(
                f"{p}: expected an image array of shape (N, H, W) or (N, H, W, C), got shape {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InvalidTypeError(f"{p}: expected numeric pixels, got dtype {arr.dtype}")
        return arr
    if p.suffix.lower() == ".npy":
        raise InvalidInputError(f"{p}: not a .npy file (the NumPy magic bytes are missing)")
    return _read_idx(p, (3, 4), "an IDX image file")


def load_idx_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX label file (magic ``0x00000801``), plain or gzip-compressed.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    numpy.ndarray of shape (N,), int64

    Raises
    ------
    InvalidInputError
        Missing file, not an IDX label file (e.g. an image file), or truncated data.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(f"{p}: no such file (expected an IDX label file)")
    return _read_idx(p, (1,), "an IDX label file").astype(np.int64)


_BLOCK_ROWS = 4096  # rows converted / projected at a time: bounds the float64 temporaries


def _n_features(images: np.ndarray) -> int:
    """Number of values per image (product of all but the first dimension)."""
    return int(np.prod(images.shape[1:], dtype=np.int64))


def _as_image_array(images: Any, name: str) -> np.ndarray:
    """Validate an image (or flat feature) array: numeric, at least 2-D, at least one row."""
    if isinstance(images, np.ndarray) and images.dtype == object:
        raise InvalidTypeError(f"{name}: expected numeric pixels, got an object array (ragged images?)")
    try:
        a = np.asarray(images)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{name}: cannot be read as an array of images ({exc})") from exc
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidTypeError(f"{name}: expected numeric pixels, got dtype {a.dtype}")
    if a.ndim < 2:
        raise InvalidInputError(
            f"{name}: expected images of shape (N, H, W), (N, H, W, C) or flat (N, D), got shape {a.shape}"
        )
    if a.shape[0] == 0:
        raise InvalidInputError(f"{name}: holds no images (0 rows)")
    if _n_features(a) == 0:
        raise InvalidInputError(f"{name}: images have no pixels (shape {a.shape})")
    return a


def _scale(block: np.ndarray) -> np.ndarray:
    """Flattened block as float32, unsigned 8/16-bit integers scaled to [0, 1]; input is already valid."""
    flat = block.reshape(block.shape[0], -1)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) * np.float32(1 / 255)
    if flat.dtype == np.uint16:
        return flat.astype(np.float32) * np.float32(1 / 65535)
    return flat.astype(np.float32)


def _pixel_features(a: np.ndarray, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Flattened, scaled float32 features of all rows (or ``rows``) of a valid image array, checked finite."""
    idx = np.arange(a.shape[0]) if rows is None else rows
    out = np.empty((idx.size, _n_features(a)), dtype=np.float32)
    for s in range(0, idx.size, _BLOCK_ROWS):
        sel = idx[s:s + _BLOCK_ROWS]
        blk = a[sel[0]:sel[-1] + 1] if rows is None else a[sel]
        out[s:s + sel.size] = _scale(blk)
        _check_finite(out[s:s + sel.size], name, row0=int(sel[0]) if rows is None else None, rows=sel)
    return out


def _check_finite(block: np.ndarray, name: str, *, row0: int | None, rows: np.ndarray) -> None:
    """Raise InvalidInputError naming the first image with a NaN or infinite value."""
    ok = np.isfinite(block).all(axis=1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        img = (row0 + bad) if row0 is not None else int(rows[bad])
        raise InvalidInputError(f"{name}: image {img} has a NaN or infinite pixel value; pixels must be finite")


class ImagePCA:
    """PCA of image pixels, fitted on a seeded sample, applied in blocks; shares one projection across sets.

    Parameters
    ----------
    n_components : int
        Output dimension; at most ``min(fitted rows, pixels per image)``.
    seed : int, default 0
        Seed of the row sample used for fitting (``numpy.random.default_rng``).
    fit_rows : int, default 20000
        Fit on at most this many rows (a sample without replacement, kept in file order); memory for the fit
        is about ``fit_rows * pixels * 8`` bytes.

    Attributes
    ----------
    mean_ : ndarray of shape (D,), float64
        Mean of the fitted sample (features are flattened pixels scaled as in :func:`image_embeddings`).
    components_ : ndarray of shape (n_components, D), float64
        Orthonormal principal axes; each one's largest-magnitude entry is positive.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the fitted sample along each axis (``ddof=1``).
    explained_variance_ratio_ : ndarray of shape (n_components,)
    n_features_in_ : int
    n_samples_fit_ : int
        Rows the fit used.

    Notes
    -----
    Input to :meth:`fit` and :meth:`transform` is images (N, H, W[, C]) or a flat (N, D) array; both are
    flattened and ``uint8``/``uint16`` pixels scaled to [0, 1] exactly as :func:`image_embeddings` does.
    """

    def __init__(self, n_components: int, *, seed: int = 0, fit_rows: int = 20000) -> None:
        self.n_components = n_components
        self.seed = seed
        self.fit_rows = fit_rows

    def fit(self, images: Any) -> ImagePCA:
        """Fit the projection on (a seeded sample of) ``images``; returns self."""
        a = _as_image_array(images, "images")
        k = check_int(self.n_components, "pca_dim", low=1)
        fit_rows = check_int(self.fit_rows, "pca_fit_rows", low=1)
        check_int(self.seed, "seed", low=0)
        n, d = a.shape[0], _n_features(a)
        m = min(n, fit_rows)
        if k > min(m, d):
            raise InvalidParameterError(
                f"pca_dim must be <= min(rows used for the fit, pixels per image) = min({m}, {d}) = {min(m, d)}, "
                f"got {k}"
            )
        if m < n:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(n, size=m, replace=False))
            sample = _pixel_features(a, "images", rows).astype(np.float64)
        else:
            sample = _pixel_features(a, "images").astype(np.float64)
        mean = sample.mean(axis=0)
        sample -= mean
        _, s, vt = np.linalg.svd(sample, full_matrices=False)
        comps = vt[:k]
        # Fix each axis's sign (largest-|value| entry positive) so the output does not depend on LAPACK.
        lead = comps[np.arange(k), np.argmax(np.abs(comps), axis=1)]
        comps = comps * np.where(lead < 0, -1.0, 1.0)[:, None]
        var = s**2 / max(m - 1, 1)
        total = float(var.sum())
        self.mean_ = mean
        self.components_ = np.ascontiguousarray(comps)
        self.explained_variance_ = var[:k]
        self.explained_variance_ratio_ = var[:k] / total if total > 0 else np.zeros(k)
        self.n_features_in_ = d
        self.n_samples_fit_ = m
        logger.info("image PCA: %d -> %d dimensions fitted on %d of %d rows, %.1f%% of variance kept",
                    d, k, m, n, 100 * float(self.explained_variance_ratio_.sum()))
        return self

    def transform(self, images: Any) -> np.ndarray:
        """Project ``images`` onto the fitted axes; returns float32 of shape (N, n_components)."""
        if not hasattr(self, "components_"):
            raise InvalidInputError("ImagePCA is not fitted yet: call fit(images) before transform")
        a = _as_image_array(images, "images")
        d = _n_features(a)
        if d != self.n_features_in_:
            raise InvalidInputError(
                f"images have {d} values per image (shape {a.shape[1:]}), but the PCA was fitted on "
                f"{self.n_features_in_}; pool and target images must have the same size"
            )
        n = a.shape[0]
        out = np.empty((n, self.components_.shape[0]), dtype=np.float32)
        for s in range(0, n, _BLOCK_ROWS):
            blk = _scale(a[s:s + _BLOCK_ROWS]).astype(np.float64)
            _check_finite(blk, "images", row0=s, rows=np.arange(s, s + blk.shape[0]))
            out[s:s + blk.shape[0]] = (blk - self.mean_) @ self.components_.T
        return out

    def fit_transform(self, images: Any) -> np.ndarray:
        """Fit on ``images`` and project all of them; float32 of shape (N, n_components)."""
        return self.fit(images).transform(images)


def image_embeddings(
    images: Any, *, pca_dim: int | None = None, seed: int = 0, pca_fit_rows: int = 20000
) -> np.ndarray:
    """Embed images as flattened pixels scaled to [0, 1], optionally reduced by PCA.

    Parameters
    ----------
    images : array-like of shape (N, H, W), (N, H, W, C) or (N, D)
        ``uint8`` pixels are divided by 255 and ``uint16`` by 65535; floats (and other integers) are kept.
    pca_dim : int, optional
        Reduce to this many principal components (see :class:`ImagePCA`). To embed a pool and a target in the
        same space, fit one ``ImagePCA`` and call ``transform`` on both instead.
    seed : int, default 0
        Seed of the PCA's fitting sample.
    pca_fit_rows : int, default 20000
        Most rows the PCA is fitted on.

    Returns
    -------
    numpy.ndarray of shape (N, H*W*C) or (N, pca_dim), float32

    Raises
    ------
    InvalidTypeError
        Non-numeric pixels.
    InvalidInputError
        Fewer than 2 dimensions, no rows, or a NaN/inf pixel (the image index is named).
    InvalidParameterError
        ``pca_dim`` is not a positive integer or exceeds the rows/pixels available.
    """
    if pca_dim is not None:
        return ImagePCA(pca_dim, seed=seed, fit_rows=pca_fit_rows).fit_transform(images)
    a = _as_image_array(images, "images")
    return _pixel_features(a, "images")
