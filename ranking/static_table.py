"""A static token-embedding table distilled from the shipped MiniLM (the model2vec recipe).

Every token of MiniLM's vocabulary is run once through the full ONNX model (`[CLS] token
[SEP]`, mean pooled), the vectors are reduced by PCA to DIMS dimensions, and each row is
weighed down the more common its token is (SIF weights, with the vocabulary's order as a
Zipf proxy for frequency: WordPiece vocabularies list common tokens first). A text's
embedding is then the mean of its tokens' rows: a lookup and a sum instead of six layers
of attention.

The table is built once per machine by `make install` (`python -m ranking.minilm`) or at
the first start, and kept in the cache directory next to the ONNX models, keyed by the
weights' digest. Building takes under a minute on two cores; nothing is downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ranking.minilm import ModelMissing, _digest, _write_atomic, cache_dir, ensure_onnx, model_dir

logger = logging.getLogger(__name__)

# Bump when the recipe below changes, so cached tables are not reused.
TABLE_VERSION = 1
DIMS = 256
SIF_COEFFICIENT = 1e-4
BATCH = 1024


def table_path(source: Path | None = None) -> Path:
    """Where the table for the installed weights lives (it may not exist yet)."""
    source = source or model_dir()
    weights = source / "model.safetensors"
    if not weights.exists() or not (source / "tokenizer.json").exists():
        raise ModelMissing(f"no model.safetensors and tokenizer.json under {source}")
    digest = _digest(weights)
    return cache_dir() / f"static-v{TABLE_VERSION}-d{DIMS}-{digest}.npy"


def token_vectors(onnx_path: Path, vocab_size: int, cls_id: int, sep_id: int) -> np.ndarray:
    """The full model's embedding of every token id on its own, [vocab, hidden] float32."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rows: list[np.ndarray] = []
    for start in range(0, vocab_size, BATCH):
        ids = np.arange(start, min(vocab_size, start + BATCH), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        (pooled,) = session.run(None, {"input_ids": batch, "attention_mask": np.ones_like(batch)})
        rows.append(pooled.astype(np.float32))
    return np.concatenate(rows)


def reduce(vectors: np.ndarray, dims: int = DIMS) -> np.ndarray:
    """PCA to `dims` dimensions (centred), then SIF weights by vocabulary rank."""
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dims].T
    inverse_rank = 1.0 / np.arange(2, len(vectors) + 2)
    probability = inverse_rank / inverse_rank.sum()
    weights = SIF_COEFFICIENT / (SIF_COEFFICIENT + probability)
    weighted: np.ndarray = (reduced * weights[:, None]).astype(np.float32)
    return weighted


def build_table(source: Path | None = None) -> Path:
    """Distil the table for the installed weights, unless it is cached already."""
    source = source or model_dir()
    path = table_path(source)
    if path.exists():
        return path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError(f"the tokenizer under {source} has no [CLS] or [SEP] token")
    logger.info("distilling the static embedding table from %s", source)
    vectors = token_vectors(
        ensure_onnx(quantize=False, source=source), tokenizer.get_vocab_size(), cls_id, sep_id
    )
    table = reduce(vectors).astype(np.float16)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.save would add `.npy` to a path
            np.save(f, table)

    _write_atomic(path, write)
    return path
