"""Text embedding speed: the ONNX Runtime backend against sentence-transformers, side by side in one run.

Both backends of :class:`gioselect.embed.TextEmbedder` embed the same texts with the packaged all-MiniLM-L6-v2:

* **speed**: a seeded sample of ``--sentences`` demo sentences (default 2,000) embedded ``--repeats`` times by
  each backend, the two interleaved (sentence-transformers, then ONNX, then again) so a change of load on a
  shared machine hits both; the median seconds of each give sentences/s and the ratio. Model loading (and the
  one-time ONNX export) happens before, with a warm-up batch, and is reported separately.
* **agreement**: every sentence of the demo (``examples/bbc_demo.py``: the 5,000-sentence pool and the
  200-sentence target, default options) embedded once by each backend; the cosine similarity of each pair of
  rows, its minimum, and the largest element difference. ``--corpus bbc`` checks the whole BBC corpus instead
  (``experiments/common.bbc_corpus()``, about 39,500 sentences: long).

The embedding cache is not used (every figure is a model run). Run from the repository root::

    .venv/bin/python benchmarks/bench_embed.py --out benchmarks/results/bench_embed.json

Options: ``--sentences``, ``--repeats``, ``--threads`` (default: all cores), ``--batch-size`` (default 64),
``--corpus demo|bbc``, ``--no-agreement`` (speed only), ``--out`` (JSON), ``--int8 library``: a third column, the
library's opt-in ``onnx-int8`` backend (as a user runs it); ``--int8 qkv-inter|inter|ff|all``: a third column, a
dynamically quantised (int8 weights, per channel) copy of the exported ONNX model, built with
``onnxruntime.quantization.quantize_dynamic`` in a temporary folder from the cached export: ``qkv-inter`` quantises
the query/key/value and feed-forward up-projection MatMuls of every layer, ``inter`` the up-projections only,
``ff`` both feed-forward MatMuls, ``all`` every weight MatMul. It is timed and checked like the other two.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "experiments"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from gioselect.embed import TextEmbedder  # noqa: E402
from gioselect.embed.onnx_backend import ONNX_BATCH_TOKENS  # noqa: E402

BACKENDS = ("sentence-transformers", "onnx")
INT8_VARIANTS = ("qkv-inter", "inter", "ff", "all")
#: ``--int8`` choices: the library's ``onnx-int8`` backend, or one of the screening variants above.
INT8_CHOICES = ("library", *INT8_VARIANTS)


def _int8_nodes(names: list[str], variant: str) -> list[str]:
    """The weight MatMuls of the exported graph that ``variant`` quantises."""
    weights = [n for n in names if not n.endswith(("self/MatMul", "self/MatMul_1"))]  # not the attention products
    up = [n for n in weights if "/intermediate/" in n]
    down = [n for n in weights if "/output/dense/" in n and "/attention/" not in n]
    qkv = [n for n in weights if "/attention/self/" in n]
    return {"qkv-inter": qkv + up, "inter": up, "ff": up + down, "all": weights}[variant]


class Int8Embedder(TextEmbedder):
    """The ONNX backend on an int8 copy of the exported model (benchmark only; not offered by the library)."""

    def __init__(self, variant: str, workdir: Path, **kwargs: Any) -> None:
        super().__init__(backend="onnx", **kwargs)
        self.variant, self.workdir = variant, workdir
        self._model: Any = None

    def _onnx(self) -> Any:
        if self._model is None:
            import onnx
            import onnxruntime as ort
            from onnxruntime.quantization import QuantType, quantize_dynamic
            from tokenizers import Tokenizer

            from gioselect.embed import onnx_backend as ob

            fp32 = ob.load_onnx_model(self.model_id, self.model_path, self._n_threads())  # exports if needed
            src = ob.onnx_cache_dir() / f"{self.model_id}-onnx{ob._ONNX_EXPORT_VERSION}" / "model.onnx"
            names = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "MatMul"]
            dest = self.workdir / f"int8-{self.variant}.onnx"
            quantize_dynamic(str(src), str(dest), nodes_to_quantize=_int8_nodes(names, self.variant),
                             per_channel=True, weight_type=QuantType.QInt8)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # as the library: one core per call, threads calls at once
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(dest), sess_options=opts, providers=["CPUExecutionProvider"])
            tok = Tokenizer.from_file(str(fp32.spec.transformer_dir / "tokenizer.json"))
            self._model = ob.OnnxModel(session, tok, fp32.spec, workers=self._n_threads())
        return self._model


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and versions, so a result can be read on its own."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        ram = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    versions = {}
    for mod in ("numpy", "torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram, "python": platform.python_version(),
            "load_average_1min_at_start": load, "versions": versions}


def demo_sentences() -> list[str]:
    """The demo's pool and target sentences, as ``make demo`` builds them (default options)."""
    import bbc_demo

    pool, target = bbc_demo.build(bbc_demo.corpus_dir(), "tech", 5000, 200, 0)
    return [r["text"] for r in pool + target]


def bbc_sentences() -> list[str]:
    import common

    return [r["text"] for r in common.bbc_corpus()]


def timed(embedder: TextEmbedder, texts: list[str]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = embedder.embed(texts)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=2000, help="sentences per timed batch (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each backend (default 3)")
    ap.add_argument("--threads", type=int, default=None, help="threads of both backends (default: all cores)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--corpus", choices=("demo", "bbc"), default="demo", help="sentences of the agreement check")
    ap.add_argument("--no-agreement", dest="agreement", action="store_false", help="speed only")
    ap.add_argument("--seed", type=int, default=0, help="seed of the timed sample")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--int8", choices=INT8_CHOICES, default=None,
                    help="also time and check the library's onnx-int8 backend ('library') or an int8 copy of the "
                         "ONNX model (see the module notes)")
    args = ap.parse_args(argv)
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="bench-embed-")
    backends = (*BACKENDS, "onnx-int8") if args.int8 else BACKENDS

    result: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                              "machine": machine(), "command": " ".join(["benchmarks/bench_embed.py", *sys.argv[1:]])}
    texts = demo_sentences()
    rng = np.random.default_rng(args.seed)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(args.sentences, len(texts)), replace=False)]
    emb = {b: TextEmbedder(threads=args.threads, batch_size=args.batch_size, backend=b) for b in BACKENDS}
    if args.int8 == "library":
        emb["onnx-int8"] = TextEmbedder(threads=args.threads, batch_size=args.batch_size, backend="onnx-int8")
    elif args.int8:
        emb["onnx-int8"] = Int8Embedder(args.int8, Path(tmp.name), threads=args.threads, batch_size=args.batch_size)
    load_s = {}
    for b, e in emb.items():  # load (and export or quantise, first time), then warm up
        t0 = time.perf_counter()
        e.embed(sample[: args.batch_size])
        load_s[b] = round(time.perf_counter() - t0, 2)
        print(f"{b}: loaded and warmed up in {load_s[b]} s", flush=True)
    onnx_file = Path(str(getattr(emb["onnx"]._onnx().session, "_model_path", "?"))).name  # fused, or the export
    times: dict[str, list[float]] = {b: [] for b in backends}
    loads: list[float | None] = []
    for r in range(args.repeats):
        for b in backends:
            s, _ = timed(emb[b], sample)
            times[b].append(s)
            print(f"repeat {r + 1}/{args.repeats} {b}: {s:.1f} s ({len(sample) / s:.1f} sentences/s)", flush=True)
        loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
        print(f"repeat {r + 1}/{args.repeats}: 1-minute load average {loads[-1]}", flush=True)
    med = {b: statistics.median(times[b]) for b in backends}
    result["speed"] = {
        "sentences": len(sample), "repeats": args.repeats, "threads": args.threads or os.cpu_count(),
        "batch_size": args.batch_size, "onnx_batch_tokens": ONNX_BATCH_TOKENS, "onnx_file": onnx_file,
        "load_and_warmup_s": load_s, "int8_variant": args.int8,
        "sentences_per_s_per_repeat": {b: [round(len(sample) / t, 1) for t in times[b]] for b in backends},
        "load_average_1min_per_repeat": loads,
        "seconds": {b: [round(t, 3) for t in times[b]] for b in backends},
        "median_s": {b: round(med[b], 3) for b in backends},
        "sentences_per_s": {b: round(len(sample) / med[b], 1) for b in backends},
        "ratio_onnx_over_st": round(med["sentence-transformers"] / med["onnx"], 2),
        "ratio_per_repeat": [round(a / b, 2) for a, b in zip(times["sentence-transformers"], times["onnx"],
                                                             strict=True)],
        "load_average_1min_after_speed": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if args.int8:
        result["speed"]["ratio_int8_over_st"] = round(med["sentence-transformers"] / med["onnx-int8"], 2)
        result["speed"]["ratio_int8_per_repeat"] = [
            round(a / b, 2) for a, b in zip(times["sentence-transformers"], times["onnx-int8"], strict=True)]
    result["speed"]["ratio_range"] = [min(result["speed"]["ratio_per_repeat"]),
                                      max(result["speed"]["ratio_per_repeat"])]
    print(json.dumps(result["speed"], indent=1), flush=True)
    if args.agreement:
        check = texts if args.corpus == "demo" else bbc_sentences()
        full, pass_s = {}, {}
        for b in backends:
            s, full[b] = timed(emb[b], check)
            pass_s[b] = round(s, 2)
            print(f"agreement pass {b}: {len(check)} sentences in {s:.1f} s", flush=True)
        a = full["sentence-transformers"].astype(np.float64)
        for b in backends[1:]:
            o = full[b].astype(np.float64)
            cos = np.einsum("ij,ij->i", a, o) / (np.linalg.norm(a, axis=1) * np.linalg.norm(o, axis=1))
            worst = int(np.argmin(cos))
            result["agreement" if b == "onnx" else f"agreement_{b}"] = {
                "corpus": args.corpus, "sentences": len(check), "min_cosine": float(cos.min()),
                "median_cosine": float(np.median(cos)), "max_abs_difference": float(np.abs(a - o).max()),
                "worst_sentence": check[worst], "pass_seconds": pass_s,
                "sentences_below_0.99": int(np.count_nonzero(cos < 0.99)),
            }
            print(json.dumps(result["agreement" if b == "onnx" else f"agreement_{b}"], indent=1), flush=True)
        result["load_average_1min_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
