"""A MiniLM-style encoder (6 layers, hidden 384, 12 heads, FFN 1536, sequence 128, with an
attention mask) built with onnx.helper and numpy: no PyTorch and no model hub needed.

The graph follows what `torch.onnx.export` of a Hugging Face BertModel gives at opset 17
(the test suite's `bert` case): word + position + token-type embeddings, LayerNormalization,
per layer Q/K/V MatMul + Add, Reshape/Transpose into heads, QKᵀ / √d + the additive mask
((1 - mask) · float32 min), Softmax, ·V, the output projection, residual + LayerNorm, and an
Erf-GELU feed-forward block. Weights are seeded normal values with BERT's initialiser scale
(std 0.02; LayerNorm γ = 1, β = 0), so outputs do not vanish.

usage: python benches/minilm.py OUT_DIR   (writes OUT_DIR/model.onnx and test_data_set_0/input_*.pb)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS, HIDDEN, HEADS, FFN, SEQ, VOCAB, MAX_POS = 6, 384, 12, 1536, 128, 30522, 512


def build(seed=0):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def w(name, shape, std=0.02):
        inits.append(numpy_helper.from_array((std * rng.standard_normal(shape)).astype(np.float32), name))
        return name

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def linear(x, name, n_in, n_out):
        y = node("MatMul", [x, w(f"{name}.weight", (n_in, n_out))], f"{name}.mm")
        return node("Add", [y, const(f"{name}.bias", np.zeros(n_out, np.float32))], f"{name}.out")

    def layer_norm(x, name):
        g = const(f"{name}.gamma", np.ones(HIDDEN, np.float32))
        b = const(f"{name}.beta", np.zeros(HIDDEN, np.float32))
        return node("LayerNormalization", [x, g, b], f"{name}.out", axis=-1, epsilon=1e-12)

    head = HIDDEN // HEADS
    # Embeddings: the position and token-type rows are gathered as the export does.
    word = node("Gather", [w("embeddings.word", (VOCAB, HIDDEN)), "input_ids"], "emb.word")
    pos_ids = const("position_ids", np.arange(SEQ, dtype=np.int64).reshape(1, SEQ))
    pos = node("Gather", [w("embeddings.position", (MAX_POS, HIDDEN)), pos_ids], "emb.pos")
    types = const("token_type_ids", np.zeros((1, SEQ), np.int64))
    tok = node("Gather", [w("embeddings.token_type", (2, HIDDEN)), types], "emb.type")
    x = node("Add", [node("Add", [word, tok], "emb.sum0"), pos], "emb.sum")
    x = layer_norm(x, "emb.ln")
    # The additive mask: (1 - mask) · float32 min, broadcast over heads and query rows.
    m = node("Unsqueeze", ["attention_mask", const("axes12", np.array([1, 2], np.int64))], "mask.4d")
    m = node("Cast", [m], "mask.f", to=TensorProto.FLOAT)
    m = node("Sub", [const("one", np.array(1.0, np.float32)), m], "mask.inv")
    mask = node("Mul", [m, const("fmin", np.array(np.finfo(np.float32).min, np.float32))], "mask.add")
    heads_shape = const("heads_shape", np.array([1, SEQ, HEADS, head], np.int64))
    flat_shape = const("flat_shape", np.array([1, SEQ, HIDDEN], np.int64))
    scale = const("scale", np.array(np.sqrt(head), np.float32))
    half, sqrt2 = const("half", np.array(0.5, np.float32)), const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    for i in range(LAYERS):
        p = f"layer{i}"
        split = lambda t, perm: node("Transpose", [node("Reshape", [t, heads_shape], t + ".heads")], t + ".t", perm=perm)
        q = split(linear(x, f"{p}.q", HIDDEN, HIDDEN), [0, 2, 1, 3])
        k = split(linear(x, f"{p}.k", HIDDEN, HIDDEN), [0, 2, 3, 1])
        v = split(linear(x, f"{p}.v", HIDDEN, HIDDEN), [0, 2, 1, 3])
        s = node("Div", [node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scaled")
        s = node("Softmax", [node("Add", [s, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
        c = node("Transpose", [node("MatMul", [s, v], f"{p}.ctx")], f"{p}.ctx.t", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, flat_shape], f"{p}.ctx.flat")
        x = layer_norm(node("Add", [linear(c, f"{p}.o", HIDDEN, HIDDEN), x], f"{p}.res1"), f"{p}.ln1")
        h = linear(x, f"{p}.ffn1", HIDDEN, FFN)
        e = node("Erf", [node("Div", [h, sqrt2], f"{p}.gelu.div")], f"{p}.gelu.erf")
        e = node("Add", [e, const(f"{p}.one", np.array(1.0, np.float32))], f"{p}.gelu.add")
        h = node("Mul", [node("Mul", [h, e], f"{p}.gelu.mul"), half], f"{p}.gelu")
        x = layer_norm(node("Add", [linear(h, f"{p}.ffn2", FFN, HIDDEN), x], f"{p}.res2"), f"{p}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        nodes,
        "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, SEQ]), helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, SEQ])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, SEQ, HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="neoc benches/minilm.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def inputs(seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(1, SEQ), dtype=np.int64)
    mask = np.ones((1, SEQ), np.int64)
    mask[:, 100:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def write(out):
    sd = os.path.join(out, "test_data_set_0")
    os.makedirs(sd, exist_ok=True)
    for j, (name, a) in enumerate(inputs().items()):
        with open(os.path.join(sd, f"input_{j}.pb"), "wb") as fh:
            fh.write(numpy_helper.from_array(a, name).SerializeToString())
    tmp = os.path.join(out, "model.onnx.tmp")
    onnx.save(build(), tmp)
    os.replace(tmp, os.path.join(out, "model.onnx"))


if __name__ == "__main__":
    write(sys.argv[1])
