#!/usr/bin/env python3
"""GPT-2's forward pass in numpy, written from Hugging Face's GPT-2 (names, Conv1D layout,
gelu_new, tied head), not from srgpt's code: an independent reader of `srgpt export --format hf`.

    python3 tests/gpt2_numpy.py DIR --ids '[...]' --targets '[...]' --batch B

Prints the mean next-token cross-entropy of the (B, T) token ids against the targets, computed
in float64 from the folder's config.json and model.safetensors (F32, F16 or BF16, read from the
file's own header), as `loss <value>`. Needs only numpy.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    """name -> float64 array. The format: an 8-byte little-endian header length, a JSON header
    {name: {dtype, shape, data_offsets}}, then the data the offsets point into."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    data = blob[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            values = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            # bf16 is the top half of an f32: widen by shifting the bits up
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"{name}: dtype {info['dtype']} is not a GPT-2 weight dtype")
        tensors[name] = values.astype(np.float64).reshape(info["shape"])
    return tensors


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu_new(x):
    # GPT-2's activation ("gelu_new"): the tanh approximation
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def conv1d(x, w, b):
    # transformers' Conv1D keeps its weight as (in, out): y = x @ w + b
    return x @ w + b


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def gpt2_loss(config, w, ids, targets):
    B, T = ids.shape
    d, n_head, eps = config["n_embd"], config["n_head"], config["layer_norm_epsilon"]
    hd = d // n_head
    prefix = "transformer." if "transformer.wte.weight" in w else ""
    g = lambda name: w[prefix + name]
    x = g("wte.weight")[ids] + g("wpe.weight")[np.arange(T)]
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)
    for i in range(config["n_layer"]):
        h = f"h.{i}."
        a = layer_norm(x, g(h + "ln_1.weight"), g(h + "ln_1.bias"), eps)
        qkv = conv1d(a, g(h + "attn.c_attn.weight"), g(h + "attn.c_attn.bias"))
        q, k, v = np.split(qkv, 3, axis=-1)
        heads = lambda t: t.reshape(B, T, n_head, hd).transpose(0, 2, 1, 3)
        q, k, v = heads(q), heads(k), heads(v)
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        att = np.where(causal, -np.inf, att)
        y = (softmax(att) @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        x = x + conv1d(y, g(h + "attn.c_proj.weight"), g(h + "attn.c_proj.bias"))
        m = layer_norm(x, g(h + "ln_2.weight"), g(h + "ln_2.bias"), eps)
        m = gelu_new(conv1d(m, g(h + "mlp.c_fc.weight"), g(h + "mlp.c_fc.bias")))
        x = x + conv1d(m, g(h + "mlp.c_proj.weight"), g(h + "mlp.c_proj.bias"))
    x = layer_norm(x, g("ln_f.weight"), g("ln_f.bias"), eps)
    # the head is tied to the token embedding unless the file has its own
    head = w.get("lm_head.weight", g("wte.weight"))
    logits = x @ head.T
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)
    return -picked.mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--ids", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--batch", type=int, required=True)
    a = p.parse_args()
    with open(f"{a.folder}/config.json") as f:
        config = json.load(f)
    if config.get("activation_function") != "gelu_new":
        sys.exit(f"activation {config.get('activation_function')!r}: this forward implements gelu_new only")
    weights = read_safetensors(f"{a.folder}/model.safetensors")
    ids = np.array(json.loads(a.ids)).reshape(a.batch, -1)
    targets = np.array(json.loads(a.targets)).reshape(a.batch, -1)
    print(f"loss {gpt2_loss(config, weights, ids, targets):.9f}")


if __name__ == "__main__":
    main()
