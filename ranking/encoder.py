"""Sentence embeddings on ONNX Runtime: tokenise, run MiniLM, normalise; with a text cache."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ranking.minilm import ensure_onnx, model_dir

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
MAX_TOKENS = 256
CACHE_SIZE = 4096


class Encoder:
    """all-MiniLM-L6-v2 on onnxruntime: unit-length 384-d embeddings of texts.

    Not thread-safe for concurrent `encode` calls from several threads; the batcher calls it
    from one worker thread. Embeddings of recent texts (prompts asked again, replies ranked
    twice) come from an LRU cache.
    """

    def __init__(
        self,
        onnx_path: Path | None = None,
        *,
        quantize: bool = True,
        threads: int | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        source = model_dir()
        self.path = onnx_path or ensure_onnx(quantize=quantize, source=source)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning, leaving the cores to the event loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def clear_cache(self) -> None:
        """Forget cached embeddings (benchmarks measure cold requests)."""
        with self._lock:
            self._cache.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in order; cached texts skip the model."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                if hit is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = hit
        if missing:
            fresh = self.run(list(missing))
            with self._lock:
                for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    self._cache[text] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def run(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the model, no cache; rows of like length share a model call."""
        encodings = self.tokenizer.encode_batch([t or " " for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        for bucket in _length_buckets(lengths[order]):
            rows = order[bucket]
            width = int(lengths[rows].max())
            (pooled,) = self.session.run(
                None, {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]}
            )
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            result[rows] = pooled / np.maximum(norms, 1e-12)
        return result


def _length_buckets(lengths: np.ndarray, waste: float = 0.5) -> list[list[int]]:
    """Split ascending lengths where padding to the longest would waste over `waste` of a call."""
    buckets: list[list[int]] = []
    current: list[int] = []
    used = 0
    for row, length in enumerate(lengths.tolist()):
        if current and 1 - (used + length) / (length * (len(current) + 1)) > waste:
            buckets.append(current)
            current, used = [], 0
        current.append(row)
        used += length
    if current:
        buckets.append(current)
    return buckets
