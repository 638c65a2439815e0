"""Loads a model directory that re2g wrote into Hugging Face transformers and
compares transformers' outputs with re2g's on the same inputs.

usage: hf_interop.py MODEL_DIR IN.jsonl RE2G_OUT.jsonl [--max-length N] [--num-beams N] [--max-new-tokens N]

The kind comes from config.json's architectures: DPRQuestionEncoder /
DPRContextEncoder and RAG directories (their question encoder; IN/OUT as `re2g
encode`), BertForSequenceClassification
(as `re2g rerank`), BartForConditionalGeneration (as `re2g generate`). The
model must load strictly (no missing, unexpected or mis-shaped tensors) and
the tokenizer from the directory's own files. Exits 1 on any difference
beyond --tol (vectors, logits, sequence scores) or any differing token id.
"""
import argparse
import json
import sys

import tokenizers
import torch
import transformers

# Debian sid pairs transformers 5.12.1 with tokenizers 0.23.1, which renamed
# RobertaProcessing's `cls` to `cls_token` while transformers still passes
# `cls=` (BART's tokenizer cannot be built): accept both names, as
# scripts/make_hf_fixtures.py does; the processor made is the same.
_RobertaProcessing = tokenizers.processors.RobertaProcessing
try:
    _RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0))
except TypeError:
    def _roberta_processing(sep, cls=None, cls_token=None, **kw):
        return _RobertaProcessing(sep, cls if cls is not None else cls_token, **kw)
    tokenizers.processors.RobertaProcessing = _roberta_processing


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load(cls, d):
    model, info = cls.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"{d}: transformers did not load it cleanly: {bad}")
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inp")
    ap.add_argument("ours")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--num-beams", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    cfg = json.load(open(f"{a.model}/config.json"))
    arch = cfg["architectures"][0]
    rag = arch in ("RagTokenForGeneration", "RagSequenceForGeneration")
    tok = transformers.AutoTokenizer.from_pretrained(f"{a.model}/question_encoder_tokenizer" if rag else a.model)
    rows, ours = read_jsonl(a.inp), {r["id"]: r for r in read_jsonl(a.ours)}
    worst, bad_ids, n = 0.0, 0, 0
    if arch in ("DPRQuestionEncoder", "DPRContextEncoder"):
        model = load(getattr(transformers, arch), a.model)
        for r in rows:
            if "title" in r:
                enc = tok(r["title"], r["text"], truncation="only_second", max_length=a.max_length, return_tensors="pt")
            else:
                enc = tok(r["text"], truncation=True, max_length=a.max_length, return_tensors="pt")
            v = model(**enc).pooler_output[0]
            worst = max(worst, (v - torch.tensor(ours[r["id"]]["vector"])).abs().max().item())
            n += 1
        what = "vector"
    elif rag:
        # The whole RAG model must load strictly; re2g encode gave its
        # question encoder's vectors.
        model = load(getattr(transformers, arch), a.model)
        for r in rows:
            enc = tok(r["text"], truncation=True, max_length=a.max_length, return_tensors="pt")
            v = model.question_encoder(**enc)[0][0]
            worst = max(worst, (v - torch.tensor(ours[r["id"]]["vector"])).abs().max().item())
            n += 1
        what = "question vector"
    elif arch == "BertForSequenceClassification":
        model = load(transformers.BertForSequenceClassification, a.model)
        for r in rows:
            enc = tok(r["query"], r["passage"], truncation="only_second", max_length=a.max_length, return_tensors="pt")
            score = model(**enc).logits[0, -1].item()
            worst = max(worst, abs(score - ours[r["id"]]["score"]))
            n += 1
        what = "relevance logit"
    elif arch == "BartForConditionalGeneration":
        model = load(transformers.BartForConditionalGeneration, a.model)
        kw = dict(num_beams=a.num_beams, num_return_sequences=a.num_beams, output_scores=True, return_dict_in_generate=True)
        if a.max_new_tokens:
            kw["max_new_tokens"] = a.max_new_tokens
        for r in rows:
            enc = tok(r["source"], truncation=True, max_length=a.max_length, return_tensors="pt")
            enc.pop("token_type_ids", None)
            out = model.generate(**enc, **kw)
            mine = ours[r["id"]]["outputs"]
            for k, seq in enumerate(out.sequences.tolist()):
                # a finished beam ends at its first eos after the start token;
                # what follows is padding (transformers fills it with pad or eos)
                eos = model.generation_config.eos_token_id
                if eos in seq[1:]:
                    seq = seq[: seq.index(eos, 1) + 1]
                else:
                    while len(seq) > 1 and seq[-1] == model.generation_config.pad_token_id:
                        seq.pop()
                if k >= len(mine) or mine[k]["ids"] != seq:
                    bad_ids += 1
                    print(f"  {r['id']} output {k}: transformers {seq}, re2g {mine[k]['ids'] if k < len(mine) else None}")
                elif a.num_beams > 1:
                    worst = max(worst, abs(out.sequences_scores[k].item() - mine[k]["score"]))
                n += 1
        what = "sequence (ids; score)"
    else:
        sys.exit(f"{a.model}: architecture {arch} not covered")
    ok = worst <= a.tol and bad_ids == 0
    print(f"{'ok     ' if ok else 'DIFFERS'} {arch:30s} {n:4d} {what}s, max abs difference {worst:.2e}, differing ids {bad_ids}  ({a.model})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
