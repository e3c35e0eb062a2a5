"""``gioselect embed``: texts or images to an embeddings file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from .options import EXIT_OK, add_text_options, add_verbosity, tqdm_progress

logger = logging.getLogger("gioselect.cli")

def add_embed(sub: argparse._SubParsersAction) -> None:
    """Add the ``embed`` command's subparser."""
    p = sub.add_parser(
        "embed",
        help="turn text or images into embedding vectors (.npy or .parquet)",
        description=(
            "Embed a text column (jsonl/csv/parquet; --text-field) with a local sentence-transformers model (default: "
            "the packaged all-MiniLM-L6-v2, normalised float32 vectors; cached on disk by model and content), or "
            "images (an IDX file such as Fashion-MNIST's, a .npy of shape (N, H, W[, C]), or a folder of PNG/JPEG "
            "files) as flattened pixels scaled to [0, 1], optionally reduced by PCA (--pca-dim). Writes .npy, or "
            ".parquet with an 'embedding' column, a 'row_id' column and (for text) the text column."
        ),
    )
    p.add_argument("--input", required=True, type=Path, help="text file, IDX/.npy images or an image folder")
    p.add_argument("--out", required=True, type=Path, help="output .npy or .parquet")
    g = p.add_argument_group("text")
    add_text_options(g, target=False)
    im = p.add_argument_group("images (used when --text-field is not given)")
    im.add_argument("--pca-dim", type=int, default=None, help="reduce pixels to this many PCA components")
    im.add_argument("--seed", type=int, default=0, help="seed of the PCA fitting sample (default 0)")
    r = p.add_argument_group("run")
    r.add_argument("--threads", type=int, default=None,
                   help="embedding threads (torch or ONNX Runtime; default: all cores)")
    r.add_argument("--force", action="store_true",
                   help="replace an earlier output of gioselect embed (a file it could have written; nothing else)")
    add_verbosity(r)
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from ..embed import EmbeddingCache, TextEmbedder, embed_texts, image_embeddings, load_images
    from ..errors import InvalidParameterError
    from ..io import detect_format, read_texts, write_embeddings
    from ..outdir import check_output_file
    from ..validation import check_input_path

    out: Path = args.out
    if out.suffix.lower() not in (".npy", ".parquet", ".pq") or detect_format(out) not in ("npy", "parquet"):
        raise InvalidParameterError(f"--out {out}: must end in .npy or .parquet")
    if args.text_field is not None and args.pca_dim is not None:
        raise InvalidParameterError(
            f"--pca-dim {args.pca_dim} with --text-field {args.text_field!r}: --pca-dim reduces image pixels only "
            "and text is embedded at the model's dimension; drop --pca-dim")
    check_input_path(args.input, "--input", allow_dir=True)
    check_output_file(out, [("--input", args.input), ("model", args.model)], force=args.force)
    if args.text_field is None and args.input.is_file() and args.input.suffix.lower() in (
            ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq"):
        raise InvalidParameterError(
            f"--input {args.input} is a table ({args.input.suffix.lower()[1:]}): name its text column with "
            "--text-field (images come as IDX, .npy or a folder of PNG/JPEG files)"
        )
    extra: dict[str, list[object]] = {}
    if args.text_field is not None:
        texts = read_texts(args.input, args.text_field)
        cache = EmbeddingCache(args.cache_dir) if args.embed_cache else False
        with tqdm_progress(args.quiet, "embedding", len(texts), "text") as upd:
            emb, hit = embed_texts(texts, args.model, cache=cache, batch_size=args.embed_batch_size,
                                   threads=args.threads, progress=upd, backend=args.embed_backend)
        what = f"{len(texts)} texts with {TextEmbedder(args.model).model_id}"
        how = "reused from the cache (no model run)" if hit else "computed"
        extra[args.text_field] = list(texts)
    else:
        if args.pca_dim is not None and args.pca_dim < 1:
            raise InvalidParameterError(f"--pca-dim must be >= 1, got {args.pca_dim}")
        images = load_images(args.input)
        emb = image_embeddings(images, pca_dim=args.pca_dim, seed=args.seed)
        what = f"{emb.shape[0]} images"
        how = f"as {'PCA-' + str(args.pca_dim) + ' of ' if args.pca_dim else ''}scaled pixels"
    if out.suffix.lower() != ".npy":
        extra = {"row_id": list(range(emb.shape[0])), **extra}
        write_embeddings(out, emb, extra_columns=extra)
    else:
        write_embeddings(out, emb)
    if not args.quiet:
        print(f"embedded {what}: {how}; {emb.shape[0]} x {emb.shape[1]} float32 written to {out}")
    return EXIT_OK
