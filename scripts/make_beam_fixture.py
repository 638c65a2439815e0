"""Beam-search references from transformers for early_stopping=False, where
transformers' vectorised beam search (v4.50+) stops by a rule of its own: when
the best running beam cannot beat the worst finished hypothesis. Writes
testdata/hf/bart/beam_early_stopping_false.json (sources, kwargs, sequences,
sequence scores) for neural's TestHFBeamEarlyStoppingFalse, and
testdata/hf/bart/beam_length_limit.json for TestHFBeamLengthLimit: beam 4,
4 returned, max_new_tokens short enough (4 to 8 on the tiny model, whose
hypotheses end after 6 to 8 tokens) that hypotheses end at and just before
the limit, with every early_stopping mode, length_penalty 1, 2 and 0.5,
min_length, no_repeat_ngram_size, and forced EOS on and off.

    # in a Debian sid chroot with python3-transformers (see make_hf_fixtures.py)
    python3 scripts/make_beam_fixture.py [SOURCES.jsonl]
SOURCES.jsonl: {"source": ...} lines (hf_interop.sh writes such a file from a
corpus and KILT questions: "question // passage"); without it, the sources
already in beam_early_stopping_false.json.
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
out_false = "testdata/hf/bart/beam_early_stopping_false.json"
if len(sys.argv) > 1:
    sources = [json.loads(l)["source"] for l in open(sys.argv[1]) if l.strip()][:8]
else:
    sources = json.load(open(out_false))["sources"]


def run(cases_kw):
    cases = {}
    for name, kw in cases_kw.items():
        seqs, scores = [], []
        for s in sources:
            enc = tok(s, truncation=True, max_length=64, return_tensors="pt")
            enc.pop("token_type_ids", None)
            out = model.generate(**enc, **kw, output_scores=True, return_dict_in_generate=True)
            seqs.append(out.sequences.tolist())
            scores.append(out.sequences_scores.tolist())
        cases[name] = {"kwargs": kw, "sequences": seqs, "scores": scores}
    return {"transformers_version": transformers.__version__, "sources": sources, "cases": cases}


beam = dict(num_beams=4, num_return_sequences=4)
json.dump(run({
    "lp1": dict(beam, max_length=24, early_stopping=False, length_penalty=1.0),
    "lp2": dict(beam, max_length=24, early_stopping=False, length_penalty=2.0),
}), open(out_false, "w"), indent=1)

limit = {}
for new in (4, 6, 7, 8):
    for es_name, es in (("false", False), ("true", True), ("never", "never")):
        for lp in (1.0, 2.0):
            limit[f"new{new}_es{es_name}_lp{lp:g}"] = dict(beam, max_new_tokens=new, early_stopping=es, length_penalty=lp)
    limit[f"new{new}_lp0.5"] = dict(beam, max_new_tokens=new, early_stopping=False, length_penalty=0.5)
    limit[f"new{new}_noforced"] = dict(beam, max_new_tokens=new, early_stopping=False, forced_eos_token_id=None)
    limit[f"new{new}_noforced_never_lp2"] = dict(beam, max_new_tokens=new, early_stopping="never", length_penalty=2.0, forced_eos_token_id=None)
    limit[f"new{new}_min5"] = dict(beam, max_new_tokens=new, min_length=5, early_stopping=False)
    limit[f"new{new}_norepeat2"] = dict(beam, max_new_tokens=new, no_repeat_ngram_size=2, early_stopping=False, length_penalty=2.0)
    limit[f"new{new}_min6_norepeat2_noforced"] = dict(beam, max_new_tokens=new, min_length=6, no_repeat_ngram_size=2, forced_eos_token_id=None)
limit["default"] = dict(beam, max_new_tokens=16)
json.dump(run(limit), open("testdata/hf/bart/beam_length_limit.json", "w"), separators=(",", ":"))
