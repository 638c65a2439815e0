"""Times Hugging Face tokenizers (Rust, its Python bindings) encode_batch over a
JSON list of texts and prints tokens per second (best of the rounds, after a
warm-up) and the token count. The Python twin of hf.js.

usage: RAYON_NUM_THREADS=n python3 hf.py NAME TOKENIZER TEXTS.json ROUNDS
"""
import json
import os
import sys
import time

from tokenizers import Tokenizer


def gpt2(d):
    # As transformers' GPT2Converter makes it (add_prefix_space=false, no BOS).
    vocab = json.load(open(os.path.join(d, "encoder.json"), encoding="utf-8"))
    lines = open(os.path.join(d, "vocab.bpe"), encoding="utf-8").read().split("\n")
    merges = [l for i, l in enumerate(lines) if l and not (i == 0 and l.startswith("#version"))]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return Tokenizer.from_str(json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": bl,
        "post_processor": dict(bl, add_prefix_space=True, trim_offsets=False),
        "decoder": dict(bl, add_prefix_space=True),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }))


def main():
    name, path, texts_path, rounds = sys.argv[1:5]
    texts = json.load(open(texts_path, encoding="utf-8"))
    tok = gpt2(path) if name == "gpt2" else Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    best, tokens = float("inf"), 0
    for r in range(int(rounds) + 1):
        t0 = time.perf_counter()
        encs = tok.encode_batch(texts, add_special_tokens=True)
        s = time.perf_counter() - t0
        tokens = sum(len(e.ids) for e in encs)
        if r > 0:
            best = min(best, s)
    print(tokens / best, tokens)


if __name__ == "__main__":
    main()
