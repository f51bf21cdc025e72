#!/usr/bin/env python3
"""Checks an `srgpt export --format hf` folder with Hugging Face transformers.

    python3 examples/check_hf_export.py DIR --ids '[...]' --targets '[...]' --batch B \
        --loss L [--tolerance 1e-4] [--text-hex HEX]

Loads DIR with GPT2LMHeadModel.from_pretrained (no missing or unexpected weights allowed),
computes the mean next-token loss of the (B, T) token ids against the targets and compares it
with srgpt's loss L; with --text-hex, encodes those bytes with AutoTokenizer.from_pretrained(DIR)
and compares the ids with srgpt's. Needs torch and transformers (pip install torch transformers).
"""
import argparse
import json
import sys

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--ids", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--loss", type=float, required=True)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--text-hex")
    a = p.parse_args()

    model, info = GPT2LMHeadModel.from_pretrained(a.folder, output_loading_info=True, torch_dtype=torch.float32)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"loading reported {problems}")
    model.eval()
    ids = torch.tensor(json.loads(a.ids)).view(a.batch, -1)
    targets = torch.tensor(json.loads(a.targets)).view(a.batch, -1)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1)).item()
    print(f"transformers loss {loss:.6f}, srgpt {a.loss:.6f}")
    if abs(loss - a.loss) > a.tolerance:
        sys.exit(f"the losses differ by more than {a.tolerance}")

    if a.text_hex:
        tokenizer = AutoTokenizer.from_pretrained(a.folder)
        data = bytes.fromhex(a.text_hex)
        rows = [data[i * ids.size(1):(i + 1) * ids.size(1)] for i in range(a.batch)]
        for row, want in zip(rows, ids.tolist()):
            try:
                text = row.decode("utf-8")
            except UnicodeDecodeError:
                continue  # a window may cut a multi-byte character; the tokenizer takes text
            got = tokenizer(text, add_special_tokens=False)["input_ids"]
            if got != want:
                sys.exit(f"the tokenizer gives {got[:10]}…, srgpt {want[:10]}…")
        print("the tokenizer gives srgpt's ids")


if __name__ == "__main__":
    main()
