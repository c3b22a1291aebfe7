"""Sentence embeddings on ONNX Runtime: tokenise, run MiniLM, normalise; with a text cache."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ranking.minilm import ensure_onnx, model_dir

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
MAX_TOKENS = 256
MAX_CHARS = MAX_TOKENS * 8  # read no further: a token is rarely over 8 characters
# The cache holds vectors keyed by a digest of their text (never the text), bounded in bytes.
CACHE_BYTES = 8 << 20
DIGEST_BYTES = 16


def text_key(text: str) -> bytes:
    """A fixed-size key for a text of any length."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


class Encoder:
    """all-MiniLM-L6-v2 on onnxruntime: unit-length 384-d embeddings of texts.

    Not thread-safe for concurrent `encode` calls from several threads; the batcher calls it
    from one worker thread. Embeddings of recent texts (prompts asked again, replies ranked
    twice) come from an LRU cache keyed by the texts' digests and bounded in bytes.
    """

    def __init__(
        self,
        onnx_path: Path | None = None,
        *,
        quantize: bool = True,
        threads: int | None = None,
        cache_bytes: int = CACHE_BYTES,
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
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.dim = int(self.session.get_outputs()[0].shape[1])
        # One entry: the float32 vector, its key, and the dict slot and objects around them.
        self.entry_bytes = self.dim * 4 + DIGEST_BYTES + 200
        self.cache_entries = cache_bytes // self.entry_bytes

    def clear_cache(self) -> None:
        """Forget cached embeddings (benchmarks measure cold requests)."""
        with self._lock:
            self._cache.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in order; cached texts skip the model."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        first: dict[bytes, str] = {}
        with self._lock:
            for i, text in enumerate(texts):
                key = text_key(text)
                hit = self._cache.get(key)
                if hit is None:
                    missing.setdefault(key, []).append(i)
                    first.setdefault(key, text)
                else:
                    self._cache.move_to_end(key)
                    out[i] = hit
        if missing:
            fresh = self.run([first[key] for key in missing])
            with self._lock:
                for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    if self.cache_entries:
                        self._cache[key] = vector.copy()
                while len(self._cache) > self.cache_entries:
                    self._cache.popitem(last=False)
        return out

    @property
    def cache_bytes(self) -> int:
        """About how many bytes the cache holds now."""
        return len(self._cache) * self.entry_bytes

    def run(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the model, no cache; rows of like length share a model call."""
        encodings = self.tokenizer.encode_batch([t[:MAX_CHARS] or " " for t in texts])
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
