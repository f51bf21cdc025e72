#!/usr/bin/env python3
"""Reads a folder `srgpt prepare` wrote without srgpt's code: the header of train.bin and
val.bin as README's table gives it, the u16 token ids after it, and tokenizer.json as GPT-2's
byte-level BPE. Checks that the header agrees with the files and with tokenizer.json's SHA-256,
and that the tokens of both splits decode, through tokenizer.json's vocabulary, to the text
they were made from.

    python3 tests/prepared_check.py DIR --text FILE --tokenizer byte|gpt2|hf

With Hugging Face's `tokenizers` installed, it also encodes each split's text with
tokenizer.json and requires srgpt's ids; without it, that part is skipped with a message.
Needs numpy. Exits non-zero on any mismatch.
"""
import argparse
import hashlib
import json
import struct
import sys

import numpy as np

HEADER_BYTES = 1024


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters: printable Latin-1 stands for itself,
    every other byte for 256 + its rank among them."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def read_split(path):
    blob = open(path, "rb").read()
    magic, version, width, count, vocab = struct.unpack("<8sIIQI", blob[:28])
    fail_if(magic != b"srgptTOK", f"{path}: magic {magic!r}")
    fail_if(version != 1 or width != 2, f"{path}: version {version}, {width} bytes per token")
    fail_if(len(blob) != HEADER_BYTES + 2 * count, f"{path}: {count} tokens promised, {len(blob)} bytes")
    fail_if(any(blob[128:HEADER_BYTES]), f"{path}: the reserved header bytes are not zero")
    name = blob[64:96].rstrip(b"\0").decode()
    header = {"vocab": vocab, "tokenizer_sha256": blob[32:64], "name": name, "text_sha256": blob[96:128]}
    return header, np.frombuffer(blob, dtype="<u2", offset=HEADER_BYTES)


def fail_if(bad, message):
    if bad:
        print("MISMATCH:", message)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokenizer", required=True, choices=["byte", "gpt2", "hf"])
    args = ap.parse_args()
    json_bytes = open(f"{args.dir}/tokenizer.json", "rb").read()
    tokenizer = json.loads(json_bytes)
    vocab = tokenizer["model"]["vocab"]
    text = open(args.text, "rb").read()
    (train_header, train), (val_header, val) = read_split(f"{args.dir}/train.bin"), read_split(f"{args.dir}/val.bin")
    for h in (train_header, val_header):
        fail_if(h["tokenizer_sha256"] != hashlib.sha256(json_bytes).digest(), "the header's tokenizer hash is not tokenizer.json's")
        fail_if(h["name"] != args.tokenizer, f"tokenizer {h['name']!r} in the header")
        fail_if(h["vocab"] != len(vocab), f"vocabulary of {h['vocab']} in the header, {len(vocab)} in tokenizer.json")
        fail_if(h["text_sha256"] != hashlib.sha256(text).digest(), "the header's text hash is not the text's")
    fail_if(len(val) * 5 > len(train), f"{len(train)} train and {len(val)} validation tokens: not a 90/10 split")
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    piece_of = {i: bytes(byte_of[c] for c in piece) for piece, i in vocab.items() if piece != "<|endoftext|>"}
    decoded = [b"".join(piece_of[int(i)] for i in split) for split in (train, val)]
    fail_if(decoded[0] + decoded[1] != text, "the tokens do not decode to the text")
    fail_if(abs(len(decoded[0]) - len(text) * 9 // 10) > 4, f"the split is at byte {len(decoded[0])} of {len(text)}, not 90%")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("SKIPPED the ids check: Hugging Face tokenizers is not installed (pip install tokenizers)")
        print(f"ok: {len(train)} train and {len(val)} validation tokens decode to the text")
        return
    hf = Tokenizer.from_file(f"{args.dir}/tokenizer.json")
    for name, split, part in (("train", train, decoded[0]), ("val", val, decoded[1])):
        ids = hf.encode(part.decode("utf-8"), add_special_tokens=False).ids
        first = next((i for i, (a, b) in enumerate(zip(ids, split)) if a != b), min(len(ids), len(split)))
        fail_if(ids != split.tolist(), f"{name}: tokenizers gives {len(ids)} ids, srgpt {len(split)}; first difference at {first}")
    print(f"ok: {len(train)} train and {len(val)} validation tokens decode to the text and are tokenizers' ids")


if __name__ == "__main__":
    main()
