#!/usr/bin/env python3
"""Loads a folder's tokenizer with transformers' AutoTokenizer, as a user of an srgpt export
would, and requires the ids srgpt gives for each text.

    python3 tests/tokenizer_check.py FOLDER --cases '[["text", [ids...]], ...]'

Without transformers it prints SKIPPED and exits 0; with it, any difference exits 1.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--cases", required=True, help="JSON list of [text, srgpt's ids]")
    args = ap.parse_args()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("SKIPPED: transformers is not installed (pip install transformers)")
        return
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    for text, ids in json.loads(args.cases):
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        if theirs != ids:
            print(f"MISMATCH for {text!r}: transformers {theirs}, srgpt {ids}")
            sys.exit(1)
        back = tokenizer.decode(ids)
        if back != text:
            print(f"MISMATCH: transformers decodes srgpt's ids of {text!r} to {back!r}")
            sys.exit(1)
    print(f"ok: {type(tokenizer).__name__} gives srgpt's ids for {len(json.loads(args.cases))} texts")


if __name__ == "__main__":
    main()
