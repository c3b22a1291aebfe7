"""The BERT encoder of all-MiniLM-L6-v2 and its mean pooling, written as an ONNX graph.

Reads the safetensors weights with numpy and emits either standard ONNX ops (the plain graph,
the reference) or onnxruntime's fused CPU ops (Attention, SkipLayerNormalization, BiasGelu).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
MASK_BIAS = -1e4

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file: an 8-byte header size, a JSON header, the data."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    base = 8 + size
    tensors: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = _DTYPES[meta["dtype"]]
        array = np.frombuffer(
            raw, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start
        )
        tensors[name] = array.reshape(meta["shape"]).astype(np.float32, copy=False)
    return tensors


class _Graph:
    """A small helper that names nodes and initialisers while the graph is written."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(value, name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{kind.lower()}_{self.count}"
        self.nodes.append(self.helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x: str, w: np.ndarray, b: np.ndarray, name: str) -> str:
        """x @ w.T + b, with w stored transposed once."""
        wt = self.const(f"{name}.wT", np.ascontiguousarray(w.T))
        return self.op("Add", [self.op("MatMul", [x, wt]), self.const(f"{name}.b", b)])

    def layer_norm(self, x: str, t: dict[str, np.ndarray], name: str, eps: float) -> str:
        scale = self.const(f"{name}.w", t[f"{name}.weight"])
        bias = self.const(f"{name}.b", t[f"{name}.bias"])
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def build_graph(tensors: dict[str, np.ndarray], config: dict[str, Any], fused: bool = True) -> Any:
    """The BERT encoder with mean pooling as an ONNX model: (input_ids, attention_mask) → [B, H]."""
    from onnx import TensorProto

    g = _Graph()
    hidden = int(config["hidden_size"])
    eps = float(config.get("layer_norm_eps", 1e-12))

    # Embeddings: word + position + token type 0 (a single segment), then LayerNorm.
    words = g.op(
        "Gather", [g.const("word_emb", tensors["embeddings.word_embeddings.weight"]), "input_ids"]
    )
    pos_type = (
        tensors["embeddings.position_embeddings.weight"]
        + tensors["embeddings.token_type_embeddings.weight"][0]
    )
    length = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one_i", np.array(1))])
    positions = g.op(
        "Range", [g.const("zero_i", np.array(0)), length, g.const("step_i", np.array(1))]
    )
    x = g.op("Add", [words, g.op("Gather", [g.const("pos_emb", pos_type), positions])])
    x = g.layer_norm(x, tensors, "embeddings.LayerNorm", eps)

    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)

    if fused:
        x = _fused_layers(g, x, mask, tensors, config, eps)
    else:
        x = _plain_layers(g, x, mask, tensors, config, eps)

    # Mean pooling over attended tokens (sentence-transformers' Pooling module).
    weights = g.op("Unsqueeze", [mask, g.const("axis_last", np.array([2]))])
    summed = g.op(
        "ReduceSum", [g.op("Mul", [x, weights]), g.const("axis_1", np.array([1]))], keepdims=0
    )
    counts = g.op("ReduceSum", [weights, g.const("axis_1b", np.array([1]))], keepdims=0)
    counts = g.op("Max", [counts, g.const("tiny", np.array(1e-9, np.float32))])
    g.nodes.append(g.helper.make_node("Div", [summed, counts], ["sentence_embedding"]))

    ids = g.helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])
    attn = g.helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])
    out_info = g.helper.make_tensor_value_info(
        "sentence_embedding", TensorProto.FLOAT, ["batch", hidden]
    )
    graph = g.helper.make_graph(g.nodes, "minilm", [ids, attn], [out_info], g.inits)
    model = g.helper.make_model(
        graph,
        opset_imports=[g.helper.make_opsetid("", OPSET), g.helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = 8
    return model


def _plain_layers(
    g: _Graph, x: str, mask: str, t: dict[str, np.ndarray], config: dict[str, Any], eps: float
) -> str:
    """The encoder layers in standard ONNX ops only (the reference the fused graph must match)."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    tensors = t
    # Additive attention mask [B, 1, 1, T]: 0 where attended, MASK_BIAS on padding.
    inverted = g.op("Sub", [g.const("one_f", np.array(1.0, np.float32)), mask])
    bias = g.op("Mul", [inverted, g.const("mask_bias", np.array(MASK_BIAS, np.float32))])
    bias = g.op("Unsqueeze", [bias, g.const("axes_12", np.array([1, 2]))])
    split = g.const("split_shape", np.array([0, 0, heads, head_dim]))
    merge = g.const("merge_shape", np.array([0, 0, hidden]))
    scale = g.const("attn_scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    half = g.const("half", np.array(0.5, np.float32))
    one = g.const("one_f2", np.array(1.0, np.float32))
    root2 = g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def proj(part: str, x_in: str, prefix: str = p) -> str:
            w = tensors[f"{prefix}.attention.self.{part}.weight"]
            b = tensors[f"{prefix}.attention.self.{part}.bias"]
            return g.op("Reshape", [g.linear(x_in, w, b, f"{prefix}.{part}"), split])

        q = g.op("Transpose", [proj("query", x)], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [proj("key", x)], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [proj("value", x)], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge])
        out = g.linear(
            context,
            tensors[f"{p}.attention.output.dense.weight"],
            tensors[f"{p}.attention.output.dense.bias"],
            f"{p}.attn_out",
        )
        x = g.layer_norm(g.op("Add", [x, out]), tensors, f"{p}.attention.output.LayerNorm", eps)
        inner = g.linear(
            x,
            tensors[f"{p}.intermediate.dense.weight"],
            tensors[f"{p}.intermediate.dense.bias"],
            f"{p}.ffn_in",
        )
        # Exact GELU: 0.5 * x * (1 + erf(x / sqrt 2)); onnxruntime fuses the pattern.
        erf = g.op("Erf", [g.op("Div", [inner, root2])])
        gelu = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, one])]), half])
        out = g.linear(
            gelu,
            tensors[f"{p}.output.dense.weight"],
            tensors[f"{p}.output.dense.bias"],
            f"{p}.ffn_out",
        )
        x = g.layer_norm(g.op("Add", [x, out]), tensors, f"{p}.output.LayerNorm", eps)

    return x


def _fused_layers(
    g: _Graph, x: str, mask: str, t: dict[str, np.ndarray], config: dict[str, Any], eps: float
) -> str:
    """The encoder layers in onnxruntime's fused CPU ops: Attention, SkipLayerNorm, BiasGelu."""
    from onnx import TensorProto

    ms = "com.microsoft"
    heads = int(config["num_attention_heads"])
    mask_index = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        parts = ("query", "key", "value")
        qkv_w = np.concatenate([t[f"{p}.attention.self.{n}.weight"].T for n in parts], axis=1)
        qkv_b = np.concatenate([t[f"{p}.attention.self.{n}.bias"] for n in parts])
        attn = g.op(
            "Attention",
            [
                x,
                g.const(f"{p}.qkv.w", np.ascontiguousarray(qkv_w)),
                g.const(f"{p}.qkv.b", qkv_b),
                mask_index,
            ],
            domain=ms,
            num_heads=heads,
            mask_filter_value=MASK_BIAS,
        )
        out = g.op(
            "MatMul",
            [
                attn,
                g.const(
                    f"{p}.ao.wT", np.ascontiguousarray(t[f"{p}.attention.output.dense.weight"].T)
                ),
            ],
        )
        x = g.op(
            "SkipLayerNormalization",
            [
                out,
                x,
                g.const(f"{p}.ln1.w", t[f"{p}.attention.output.LayerNorm.weight"]),
                g.const(f"{p}.ln1.b", t[f"{p}.attention.output.LayerNorm.bias"]),
                g.const(f"{p}.ao.b", t[f"{p}.attention.output.dense.bias"]),
            ],
            domain=ms,
            epsilon=eps,
        )
        inner = g.op(
            "MatMul",
            [x, g.const(f"{p}.fi.wT", np.ascontiguousarray(t[f"{p}.intermediate.dense.weight"].T))],
        )
        gelu = g.op(
            "BiasGelu", [inner, g.const(f"{p}.fi.b", t[f"{p}.intermediate.dense.bias"])], domain=ms
        )
        out = g.op(
            "MatMul",
            [gelu, g.const(f"{p}.fo.wT", np.ascontiguousarray(t[f"{p}.output.dense.weight"].T))],
        )
        x = g.op(
            "SkipLayerNormalization",
            [
                out,
                x,
                g.const(f"{p}.ln2.w", t[f"{p}.output.LayerNorm.weight"]),
                g.const(f"{p}.ln2.b", t[f"{p}.output.LayerNorm.bias"]),
                g.const(f"{p}.fo.b", t[f"{p}.output.dense.bias"]),
            ],
            domain=ms,
            epsilon=eps,
        )
    return x
