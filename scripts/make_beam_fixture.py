"""Beam-search references from transformers for early_stopping=False, where
transformers' vectorised beam search (v4.50+) stops by a rule of its own: when
the best running beam cannot beat the worst finished hypothesis. Writes
testdata/hf/bart/beam_early_stopping_false.json (sources, kwargs, sequences,
sequence scores) for neural's TestHFBeamEarlyStoppingFalse.

    # in a Debian sid chroot with python3-transformers (see make_hf_fixtures.py)
    python3 scripts/make_beam_fixture.py SOURCES.jsonl
SOURCES.jsonl: {"source": ...} lines (hf_interop.sh writes such a file from a
corpus and KILT questions: "question // passage").
"""
import json
import sys

import tokenizers
import torch
import transformers

# Debian sid pairs transformers 5.12.1 with tokenizers 0.23.1 (RobertaProcessing's
# cls renamed cls_token): accept both names, as make_hf_fixtures.py does.
_RP = tokenizers.processors.RobertaProcessing
try:
    _RP(sep=("</s>", 2), cls=("<s>", 0))
except TypeError:
    tokenizers.processors.RobertaProcessing = lambda sep, cls=None, cls_token=None, **kw: _RP(sep, cls if cls is not None else cls_token, **kw)

d = "testdata/hf/bart/safetensors"
torch.set_grad_enabled(False)
model = transformers.BartForConditionalGeneration.from_pretrained(d).eval()
tok = transformers.AutoTokenizer.from_pretrained(d)
sources = [json.loads(l)["source"] for l in open(sys.argv[1]) if l.strip()][:8]
cases = {}
for name, kw in {
    "lp1": dict(num_beams=4, num_return_sequences=4, max_length=24, early_stopping=False, length_penalty=1.0),
    "lp2": dict(num_beams=4, num_return_sequences=4, max_length=24, early_stopping=False, length_penalty=2.0),
}.items():
    seqs, scores = [], []
    for s in sources:
        enc = tok(s, truncation=True, max_length=64, return_tensors="pt")
        enc.pop("token_type_ids", None)
        out = model.generate(**enc, **kw, output_scores=True, return_dict_in_generate=True)
        seqs.append(out.sequences.tolist())
        scores.append(out.sequences_scores.tolist())
    cases[name] = {"kwargs": kw, "sequences": seqs, "scores": scores}
json.dump({"transformers_version": transformers.__version__, "sources": sources, "cases": cases},
          open("testdata/hf/bart/beam_early_stopping_false.json", "w"), indent=1)
