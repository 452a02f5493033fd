#!/usr/bin/env python3
"""Reference tokenization for the smollm example's tests.

Builds Hugging Face's `tokenizers` BPE (Rust) from the vocabulary and merges in the GGUF file,
with SmolLM2's pre-tokenizer (digits isolated, then GPT-2 byte level) and its control tokens,
and prints the ids of a few strings as JSON (the file Examples/SpargeGGUFTests/TokenizerExpected.json).

    pip install gguf tokenizers
    python3 Scripts/smollm_tokenizer_reference.py PATH.gguf > expected.json
"""
import json
import sys

import gguf
from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers

STRINGS = [
    "Hello, world!",
    "It's 2024: the year's   numbers 12345 and 3.14159 don't they'll we've I'm",
    "naïve café, Zürich — “quotes” and emoji 🙂 中文字符",
    "  leading spaces\n\n\ttabs and\r\nnewlines   \n end  ",
    "<|im_start|>user\nWhat is SpargeAttn?<|im_end|>\n<|im_start|>assistant\n",
    "def f(x):\n    return x**2  # comment\n",
    "GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007",
]


def field(reader, key):
    f = reader.fields[key]
    return f.contents()


def main():
    reader = gguf.GGUFReader(sys.argv[1])
    tokens = field(reader, "tokenizer.ggml.tokens")
    merges = field(reader, "tokenizer.ggml.merges")
    types = field(reader, "tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(specials)
    out = [{"text": s, "ids": tok.encode(s, add_special_tokens=False).ids} for s in STRINGS]
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()
