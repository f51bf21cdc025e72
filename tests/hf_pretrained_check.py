#!/usr/bin/env python3
"""A GPT-2 that Hugging Face transformers itself made and saved, scored by transformers.

    python3 tests/hf_pretrained_check.py DIR --windows '[[...], ...]'

Builds a narrow GPT2LMHeadModel (GPT-2's 50,257-token vocabulary, random weights, seed 0),
saves it into DIR with `save_pretrained` (config.json and model.safetensors, as a user's
fine-tuned GPT-2 is kept; DIR already holds GPT-2's vocab.json and merges.txt), and prints
the mean next-token cross-entropy transformers computes on the windows (each of ctx + 1
token ids: its first ctx predict its last ctx) as `loss <value>`. tests/eval.rs compares it
with `srgpt eval DIR` on the same windows. Needs torch and transformers.
"""
import argparse
import json

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--windows", required=True)
    args = p.parse_args()
    windows = torch.tensor(json.loads(args.windows), dtype=torch.long)
    ctx = windows.shape[1] - 1
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=ctx, n_embd=64, n_layer=2, n_head=2, activation_function="gelu_new")
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(args.folder, safe_serialization=True)
    with torch.no_grad():
        logits = model(windows[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), windows[:, 1:].reshape(-1))
    print(f"loss {loss.item():.9g}")


if __name__ == "__main__":
    main()
