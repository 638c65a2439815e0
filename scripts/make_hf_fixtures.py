#!/usr/bin/env python3
"""Make the Hugging Face directory fixtures under testdata/hf/.

Tiny random models in the layouts users bring (see testdata/hf/README.md),
each saved by real `transformers` twice: as model.safetensors
(save_pretrained) and as pytorch_model.bin (torch.save of the full
state_dict, tied copies and the old persistent position_ids buffers
included, as transformers 4.x's save_pretrained(safe_serialization=False)
wrote them), with the tokenizer files of the layout the fixture stands for,
and a reference.json of what transformers computes from them. Also the
tokenizer cases: ids that transformers' tokenizers give for a few hundred
real strings, per tokenizer_config.json variant.

Usage (needs transformers, torch, safetensors and tokenizers; no network):

    python3 scripts/make_hf_fixtures.py [--out testdata/hf] [--data ../shared/data]

On this project's machines the libraries live in a Debian sid chroot
(python3-transformers 5.12.1, python3-torch 2.14.1, python3-safetensors,
python3-tokenizers), prepared at /tmp/re2g-chroots/sid:

    mkdir -p /tmp/re2g-chroots/sid/work && mount --bind /work /tmp/re2g-chroots/sid/work
    chroot /tmp/re2g-chroots/sid python3 /work/main/scripts/make_hf_fixtures.py \\
        --out /work/main/testdata/hf --data /work/shared/data

(/proc and /dev mounted in the chroot too.) Everything is seeded: a rerun
with the same libraries gives the same files. The BART generator is fitted
for a few hundred steps (so that generation ends with </s>), so its weights
match across torch versions only where torch's training arithmetic does.

To check that transformers loads a RAG directory written by re2g (Go's
rag.Save) strictly and computes the recorded outputs from it:

    RE2G_RAG_SAVED=/tmp/rag-saved go test ./model/rag -run TestSaveForTransformers
    chroot ... python3 .../make_hf_fixtures.py --check-rag /tmp/rag-saved/rag-token \\
        --reference /work/main/testdata/hf/rag-token/reference.json
"""

import argparse
import copy
import json
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import tokenizers
import tokenizers.processors
import torch
import transformers
from transformers import (
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DPRConfig,
    DPRContextEncoder,
    DPRQuestionEncoder,
    GenerationConfig,
    RagConfig,
    RagSequenceForGeneration,
    RagTokenForGeneration,
    RagTokenizer,
)
from transformers.models.rag.retrieval_rag import RagRetriever

# Debian sid pairs transformers 5.12.1 with tokenizers 0.23.1, which renamed
# RobertaProcessing's `cls` argument to `cls_token`; transformers still passes
# `cls=`, so RobertaTokenizer (BART's too) cannot be built. Accept both names
# (nothing else changes: the same processor is made).
_RobertaProcessing = tokenizers.processors.RobertaProcessing
try:
    _RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0))
except TypeError:
    def _roberta_processing(sep, cls=None, cls_token=None, **kw):
        return _RobertaProcessing(sep, cls if cls is not None else cls_token, **kw)

    tokenizers.processors.RobertaProcessing = _roberta_processing
    ROBERTA_PROCESSING_SHIM = True
else:
    ROBERTA_PROCESSING_SHIM = False

TV = tuple(int(x) for x in transformers.__version__.split(".")[:2])
F32 = {"dtype": torch.float32} if TV >= (4, 56) else {"torch_dtype": torch.float32}

# ---------------------------------------------------------------- helpers


def flat(t):
    """A float tensor as {"shape", "data"} with float32 values (9 digits)."""
    a = t.detach().to(torch.float32).cpu().numpy()
    return {"shape": list(a.shape), "data": [float("%.9g" % x) for x in a.reshape(-1).tolist()]}


def ints(t):
    return t.detach().cpu().tolist()


def spread(model, seed, std=0.3, emb_std=0.5):
    """Weights wider than HF's init so that tiny models give outputs that
    differ per input (as scripts/make_parity_fixtures.py)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layernorm" in name or "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                else:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "pooler" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "embed" in name or "shared" in name:
                p.copy_(emb_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def write_json(path, obj, compact=True):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"), ensure_ascii=False)
        else:
            json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def versions():
    return dict(
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
        safetensors_version=safetensors.__version__,
        tokenizers_version=tokenizers.__version__,
    )


def dir_size(d):
    n = 0
    for root, _, files in os.walk(d):
        n += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return n


def fresh(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def old_buffers(model):
    """The persistent buffers transformers 4.x (before 4.31) saved with BERT
    weights: embeddings.position_ids, under every BERT module's prefix."""
    out = {}
    for name, mod in model.named_modules():
        if type(mod).__name__ == "BertEmbeddings":
            n = mod.position_embeddings.num_embeddings
            out[(name + "." if name else "") + "position_ids"] = torch.arange(n).expand((1, -1)).clone()
    return out


def save_both(model, base, files_from=None):
    """base/safetensors: save_pretrained; base/bin: the same config files and
    pytorch_model.bin (full state_dict with tied copies + old buffers)."""
    st = fresh(os.path.join(base, "safetensors"))
    model.save_pretrained(st)
    bn = fresh(os.path.join(base, "bin"))
    for f in os.listdir(st):
        if f.endswith(".json"):
            shutil.copy(os.path.join(st, f), bn)
    sd = dict(model.state_dict())
    sd.update(old_buffers(model))
    torch.save(sd, os.path.join(bn, "pytorch_model.bin"))
    return st, bn


def copy_tree(src, dst):
    for root, _, files in os.walk(src):
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for f in files:
            shutil.copy(os.path.join(root, f), os.path.join(dst, rel, f))


def reload(cls, d, want, inputs, fwd):
    """Load d with transformers, check nothing is missing, unexpected or
    mis-shaped (position_ids buffers of .bin files aside), and that it
    computes what the in-memory model does."""
    m, info = cls.from_pretrained(d, output_loading_info=True, **F32)
    bad = {k: [x for x in v if "position_ids" not in str(x)] for k, v in info.items() if v}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise SystemExit(f"{d}: loading info {bad}")
    m.eval()
    with torch.no_grad():
        got = fwd(m, inputs)
    err = (got.float() - want.float()).abs().max().item()
    print(f"  reload {os.path.relpath(d)}: max |diff| {err:.3g}")
    if err > 1e-5:
        raise SystemExit(f"{d}: reloaded model differs by {err}")
    return m


# ---------------------------------------------------------------- data


def load_squad(data):
    with open(os.path.join(data, "squadshifts", "new_wiki_v1.0.json"), encoding="utf-8") as f:
        d = json.load(f)
    qs, paras = [], []
    for a in d["data"]:
        title = a["title"].replace("_", " ")
        for p in a["paragraphs"]:
            paras.append((title, p["context"]))
            for q in p["qas"]:
                qs.append(q["question"])
    return qs, paras


def words(text, n):
    return " ".join(text.split()[:n])


ADVERSARIAL = [
    "Héllo Wörld: naïve café, résumé — Ångström!",
    "北京是中国的首都。東京は日本の首都です。",
    "Tabs\tand\nnewlines\r\nand  double  spaces",
    "[CLS] inside [SEP] text [MASK] and [PAD] [UNK]",
    "<s> roberta <mask> tokens </s> <pad><unk>",
    "a <mask>b",
    "pad <pad> then <ent> entity<ent>x",
    "emoji 🙂👍🏽 and symbols ©®™ ½ ∑ ∞",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ﬁ ligatures",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen",
    "control\x01chars\x7f here",
    "Don't can't won't it's O'Neill's",
    "e-mail: someone@example.com, url: https://example.org/a?b=c&d=e",
    "numbers 3.14159 1,000,000 2nd 42nd 1990s",
    "ÀÉÎÕÜ àéîõü Çç Ññ Øø Łł",
    "Ελληνικά και Русский язык",
    "",
    "   leading and trailing   ",
    "UPPER lower MiXeD",
    "a" * 120,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]

# ---------------------------------------------------------------- tokenizers

WORDPIECE_VARIANTS = {
    # tokenizer_config.json of each variant (vocab.txt is bert-base-uncased's)
    "lower": {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"},
    "cased": {"do_lower_case": False, "model_max_length": 512, "tokenizer_class": "BertTokenizer"},
    "default": {"tokenizer_class": "BertTokenizer"},
    "lower_keep_accents": {"do_lower_case": True, "strip_accents": False, "tokenizer_class": "BertTokenizer"},
    "cased_strip_accents": {"do_lower_case": False, "strip_accents": True, "tokenizer_class": "BertTokenizer"},
    "no_chinese_chars": {"do_lower_case": True, "tokenize_chinese_chars": False, "tokenizer_class": "BertTokenizer"},
    # no tokenizer_class: AutoTokenizer goes by config.json's model_type
    "no_class": {"do_lower_case": False, "model_max_length": 256},
}
VARIANT_CONFIG = {"no_class": {"model_type": "bert"}}

BPE_VARIANTS = {
    # tokenizer_config.json (and special_tokens_map.json) of each variant
    "bart": {"tokenizer_class": "BartTokenizer", "model_max_length": 1024},
    "bart_prefix_space": {"tokenizer_class": "BartTokenizer", "add_prefix_space": True, "model_max_length": 1024},
    # <mask> with lstrip as an AddedToken dict (a plain "<mask>" has none in
    # transformers 5; 4.x's RobertaTokenizerFast added lstrip itself)
    "roberta_mask_lstrip": {"tokenizer_class": "RobertaTokenizer"},
    # the same from added_tokens_decoder, special_tokens_map.json's strings plain
    "bart_added_tokens_decoder": {"tokenizer_class": "BartTokenizer", "added_tokens_decoder": "MASK_LSTRIP"},
    # an rstrip <pad> and an extra special token outside the vocabulary
    "bart_rstrip_pad_extra": {"tokenizer_class": "BartTokenizer", "additional_special_tokens": ["<ent>"]},
}
_MASK_LSTRIP = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}
BPE_VARIANT_SPECIAL = {
    "roberta_mask_lstrip": {"mask_token": _MASK_LSTRIP},
    "bart_rstrip_pad_extra": {"pad_token": {"content": "<pad>", "lstrip": False, "normalized": False, "rstrip": True,
                                            "single_word": False}},
}

BPE_SPECIAL_MAP = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                   "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
BERT_SPECIAL_MAP = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}


def bert_vocab(data):
    with open(os.path.join(data, "tokenizers", "bert-base-uncased", "tokenizer.json"), encoding="utf-8") as f:
        v = json.load(f)["model"]["vocab"]
    toks = sorted(v, key=v.get)
    assert [v[t] for t in toks] == list(range(len(toks)))
    return toks


def gpt2_bpe(data, n_merges):
    """A byte-level BPE vocabulary from GPT-2's files: the 256 byte symbols
    and the results of its first n_merges merges (those whose parts are
    already in), in BART's layout (<s> <pad> </s> <unk> first, <mask> last)."""
    d = os.path.join(data, "tokenizers", "gpt2-bpe")
    with open(os.path.join(d, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(d, "vocab.bpe"), encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#version")]
    byte_syms = sorted((t for t in enc if enc[t] < 256), key=enc.get)
    assert len(byte_syms) == 256
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for s in byte_syms:
        vocab[s] = len(vocab)
    merges = []
    for l in lines:
        if len(merges) == n_merges:
            break
        a, b = l.split(" ")
        if a in vocab and b in vocab:
            merges.append((a, b))
            if a + b not in vocab:
                vocab[a + b] = len(vocab)
    vocab["<mask>"] = len(vocab)
    return vocab, merges


def write_bpe(d, vocab, merges):
    write_json(os.path.join(d, "vocab.json"), vocab)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def tok_cases(tok, texts, pairs, pair_max, decode=True):
    single = [tok(t)["input_ids"] for t in texts]
    p = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_second", max_length=pair_max)
    out = dict(ids=single, pair_ids=p["input_ids"])
    if "token_type_ids" in p:
        out["pair_type_ids"] = p["token_type_ids"]
    if decode:
        out["decoded"] = [tok.decode(ids, skip_special_tokens=True) for ids in single]
    out["model_max_length"] = tok.model_max_length if tok.model_max_length < 1 << 30 else 0
    return out


def make_tokenizers(out, data, texts, pairs):
    base = fresh(os.path.join(out, "tokenizers"))
    # WordPiece: the real bert-base-uncased vocab.txt, no tokenizer.json.
    wp = os.path.join(base, "wordpiece")
    os.makedirs(wp)
    with open(os.path.join(wp, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(bert_vocab(data)) + "\n")
    cases = dict(versions(), texts=texts, pairs=pairs, pair_max_length=64, variants={})
    for name, cfg in WORDPIECE_VARIANTS.items():
        with tempfile.TemporaryDirectory() as t:
            shutil.copy(os.path.join(wp, "vocab.txt"), t)
            write_json(os.path.join(t, "tokenizer_config.json"), cfg, compact=False)
            if name in VARIANT_CONFIG:
                write_json(os.path.join(t, "config.json"), VARIANT_CONFIG[name])
            tok = AutoTokenizer.from_pretrained(t)
            c = tok_cases(tok, texts, pairs, 64, decode=name in ("lower", "cased"))
        c["tokenizer_config"] = cfg
        if name in VARIANT_CONFIG:
            c["config"] = VARIANT_CONFIG[name]
        c["class"] = type(tok).__name__
        cases["variants"][name] = c
        print(f"  wordpiece {name}: {type(tok).__name__}, {sum(map(len, c['ids']))} ids")
    write_json(os.path.join(wp, "cases.json"), cases)
    # Byte-level BPE: a 5,000-merge subset of GPT-2's, vocab.json + merges.txt.
    bp = os.path.join(base, "bpe")
    os.makedirs(bp)
    vocab, merges = gpt2_bpe(data, 5000)
    write_bpe(bp, vocab, merges)
    cases = dict(versions(), texts=texts, pairs=pairs, pair_max_length=64, variants={})
    for name, cfg in BPE_VARIANTS.items():
        with tempfile.TemporaryDirectory() as t:
            for f in ("vocab.json", "merges.txt"):
                shutil.copy(os.path.join(bp, f), t)
            if cfg.get("added_tokens_decoder") == "MASK_LSTRIP":
                cfg = dict(cfg, added_tokens_decoder={str(vocab["<mask>"]): _MASK_LSTRIP})
            smap = dict(BPE_SPECIAL_MAP, **BPE_VARIANT_SPECIAL.get(name, {}))
            write_json(os.path.join(t, "tokenizer_config.json"), cfg, compact=False)
            write_json(os.path.join(t, "special_tokens_map.json"), smap, compact=False)
            tok = AutoTokenizer.from_pretrained(t)
            c = tok_cases(tok, texts, pairs, 64, decode=name == "bart")
        c["tokenizer_config"] = cfg
        c["special_tokens_map"] = smap
        c["class"] = type(tok).__name__
        cases["variants"][name] = c
        print(f"  bpe {name}: {type(tok).__name__}, {sum(map(len, c['ids']))} ids")
    write_json(os.path.join(bp, "cases.json"), cases)
    print(f"  {os.path.relpath(base)}: {dir_size(base) / 1024:.0f} KiB")


# ---------------------------------------------------------------- model tokenizers


def small_bert_vocab(full, texts):
    """[PAD] [UNK] [CLS] [SEP] [MASK], then every bert-base-uncased token the
    texts need (uncased and cased), every printable ASCII character and its
    ## continuation, in bert-base-uncased's order."""
    need = set()
    for lower in (True, False):
        with tempfile.TemporaryDirectory() as t:
            with open(os.path.join(t, "vocab.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(full) + "\n")
            write_json(os.path.join(t, "tokenizer_config.json"), {"do_lower_case": lower, "tokenizer_class": "BertTokenizer"})
            tok = AutoTokenizer.from_pretrained(t)
            for x in texts:
                need.update(tok.tokenize(x))
    for c in range(33, 127):
        need.add(chr(c))
        need.add("##" + chr(c))
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    rest = [t for t in full if t in need and t not in special]
    return special + rest


def write_wordpiece_tokenizer(d, vocab, lower, layout, max_len=64):
    """layout "legacy": vocab.txt + tokenizer_config.json (+ special_tokens_map.json);
    "vocab-only": vocab.txt + tokenizer_config.json; "saved": what this
    transformers' save_pretrained writes (tokenizer.json + tokenizer_config.json)."""
    os.makedirs(d, exist_ok=True)
    cfg = {"do_lower_case": lower, "model_max_length": max_len, "tokenizer_class": "BertTokenizer", **BERT_SPECIAL_MAP}
    with tempfile.TemporaryDirectory() as t:
        with open(os.path.join(t, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        write_json(os.path.join(t, "tokenizer_config.json"), cfg, compact=False)
        if layout == "saved":
            AutoTokenizer.from_pretrained(t).save_pretrained(d)
        else:
            copy_tree(t, d)
            if layout == "legacy":
                write_json(os.path.join(d, "special_tokens_map.json"), BERT_SPECIAL_MAP, compact=False)
    return AutoTokenizer.from_pretrained(d)


def write_bpe_tokenizer(d, vocab, merges, layout, max_len=128):
    os.makedirs(d, exist_ok=True)
    cfg = {"tokenizer_class": "BartTokenizer", "model_max_length": max_len, "add_prefix_space": False}
    with tempfile.TemporaryDirectory() as t:
        write_bpe(t, vocab, merges)
        write_json(os.path.join(t, "tokenizer_config.json"), cfg, compact=False)
        write_json(os.path.join(t, "special_tokens_map.json"), BPE_SPECIAL_MAP, compact=False)
        if layout == "saved":
            AutoTokenizer.from_pretrained(t).save_pretrained(d)
        else:
            copy_tree(t, d)
    return AutoTokenizer.from_pretrained(d)


# ---------------------------------------------------------------- BERT family

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=64, type_vocab_size=2, initializer_range=0.2)


def encoded(tok, a, b=None, **kw):
    x = tok(a, b, padding=True, return_tensors="pt", **kw) if b is not None else tok(a, padding=True, return_tensors="pt", **kw)
    return {k: v for k, v in x.items()}


def logits_ref(logits, labels):
    """LM logits [B, T, V] in a compact form that still checks every entry:
    the log-sum-exp and the argmax of each row, and the logits at 48 fixed
    ids (the first 16, then every (V//32)-th) plus the row's target id."""
    V = logits.shape[-1]
    ids = sorted(set(list(range(16)) + list(range(16, V, max(1, V // 32)))))[:48]
    at = logits[..., ids]
    tgt = torch.gather(logits, -1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return dict(shape=list(logits.shape), ids=ids, at_ids=flat(at), logsumexp=flat(torch.logsumexp(logits, -1)),
                argmax=ints(logits.argmax(-1)), targets=ints(labels), at_targets=flat(tgt))


def write_ref(base, model, obj):
    obj = dict(model_class=type(model).__name__, **versions(), compute_dtype="float32", **obj)
    write_json(os.path.join(base, "reference.json"), obj)
    print(f"  {os.path.relpath(base)}: {dir_size(base) / 1024:.0f} KiB")


def make_bert_family(out, vocab, queries, passages):
    V = len(vocab)
    # DPR question / context encoders (tokenizer as this transformers saves it).
    for name, cls, proj, seed, ctx in (("dpr-question", DPRQuestionEncoder, 0, 2, False),
                                       ("dpr-ctx", DPRContextEncoder, 16, 3, True)):
        base = fresh(os.path.join(out, name))
        torch.manual_seed(seed)
        m = cls(DPRConfig(vocab_size=V, projection_dim=proj, **SMALL))
        spread(m, seed)
        m.eval()
        st, bn = save_both(m, base)
        tok = write_wordpiece_tokenizer(st, vocab, True, "saved")
        write_wordpiece_tokenizer(bn, vocab, True, "saved")
        if ctx:
            x = encoded(tok, [t for t, _ in passages], [p for _, p in passages], truncation=True, max_length=64)
            texts = dict(titles=[t for t, _ in passages], texts=[p for _, p in passages])
        else:
            x = encoded(tok, queries)
            texts = dict(queries=queries)
        with torch.no_grad():
            want = m(**x).pooler_output
        for d in (st, bn):
            reload(cls, d, want, x, lambda mm, xx: mm(**xx).pooler_output)
        write_ref(base, m, dict(projection_dim=proj, texts=texts, inputs={k: ints(v) for k, v in x.items()},
                                outputs=dict(pooler_output=flat(want))))
    # Plain BertModel with pooler (tokenizer as saved).
    base = fresh(os.path.join(out, "bert"))
    torch.manual_seed(1)
    m = BertModel(BertConfig(vocab_size=V, **SMALL), add_pooling_layer=True)
    spread(m, 1)
    m.eval()
    st, bn = save_both(m, base)
    tok = write_wordpiece_tokenizer(st, vocab, True, "saved")
    write_wordpiece_tokenizer(bn, vocab, True, "saved")
    x = encoded(tok, queries)
    with torch.no_grad():
        o = m(**x)
    for d in (st, bn):
        reload(BertModel, d, o.last_hidden_state, x, lambda mm, xx: mm(**xx).last_hidden_state)
    write_ref(base, m, dict(texts=dict(queries=queries), inputs={k: ints(v) for k, v in x.items()},
                            outputs=dict(last_hidden_state=flat(o.last_hidden_state), pooler_output=flat(o.pooler_output))))
    # Cross-encoders: vocab.txt + tokenizer_config.json only (as ibm/re2g-reranker-nq).
    for labels, seed, lower in ((1, 5, False), (2, 4, True)):
        name = f"cross-encoder-{labels}"
        base = fresh(os.path.join(out, name))
        torch.manual_seed(seed)
        m = BertForSequenceClassification(BertConfig(vocab_size=V, num_labels=labels, **SMALL))
        spread(m, seed)
        m.eval()
        st, bn = save_both(m, base)
        tok = write_wordpiece_tokenizer(st, vocab, lower, "vocab-only")
        write_wordpiece_tokenizer(bn, vocab, lower, "vocab-only")
        qs = [queries[i % len(queries)] for i in range(len(passages))]
        ps = [t + " / " + p for t, p in passages]
        x = encoded(tok, qs, ps, truncation="only_second", max_length=64)
        with torch.no_grad():
            want = m(**x).logits
        for d in (st, bn):
            reload(BertForSequenceClassification, d, want, x, lambda mm, xx: mm(**xx).logits)
        write_ref(base, m, dict(num_labels=labels, do_lower_case=lower, texts=dict(queries=qs, passages=ps),
                                inputs={k: ints(v) for k, v in x.items()}, outputs=dict(logits=flat(want))))


# ---------------------------------------------------------------- BART and RAG

BOS, PAD, EOS = 0, 1, 2


def bart_config(V):
    return BartConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                      decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=100,
                      dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, pad_token_id=PAD, bos_token_id=BOS,
                      eos_token_id=EOS, decoder_start_token_id=EOS, forced_eos_token_id=EOS, init_std=0.1)


def rag_source(title, text, query, title_sep=" / ", doc_sep=" // "):
    title = title.removeprefix('"').removesuffix('"')
    return (title + title_sep + text + doc_sep + query).replace("  ", " ")


def fit_bart(tok, V, train, steps):
    """A tiny BART fitted to answer with the first three words of the query
    from RAG-layout sources, so that generation gives short sequences ending
    with </s>."""
    torch.manual_seed(6)
    m = BartForConditionalGeneration(bart_config(V))
    spread(m, 6, std=0.15, emb_std=0.3)
    with torch.no_grad():
        g = torch.Generator().manual_seed(60)
        m.final_logits_bias.copy_(0.1 * torch.randn(m.final_logits_bias.shape, generator=g))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    rng = random.Random(7)
    m.train()
    for step in range(steps):
        b = rng.sample(train, 32)
        x = tok([s for s, _ in b], padding=True, truncation=True, max_length=96, return_tensors="pt")
        y = tok([t for _, t in b], padding=True, return_tensors="pt")["input_ids"]
        y = y.masked_fill(y == PAD, -100)
        loss = m(**x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  bart step {step} loss {loss.item():.3f}")
    m.eval()
    return m


# Every setting given, so that only the special tokens come from the model's
# generation config.
_GEN = dict(num_beams=1, num_return_sequences=1, max_length=24, min_length=0, no_repeat_ngram_size=0,
            length_penalty=1.0, early_stopping=False, do_sample=False)
GEN_CASES = [
    ("greedy", dict(_GEN)),
    ("greedy_no_repeat_2", dict(_GEN, no_repeat_ngram_size=2)),
    ("beam4", dict(_GEN, num_beams=4, num_return_sequences=4, early_stopping=True)),
    ("beam3_lp2_min6", dict(_GEN, num_beams=3, num_return_sequences=2, max_length=20, min_length=6,
                            length_penalty=2.0)),
]


def gen_refs(gen, x):
    out = {}
    for name, kw in GEN_CASES:
        with torch.no_grad():
            o = gen.generate(**x, **kw, return_dict_in_generate=True, output_scores=True)
        g = dict(kwargs=kw, sequences=ints(o.sequences))
        if getattr(o, "sequences_scores", None) is not None:
            g["sequences_scores"] = flat(o.sequences_scores)
        out[name] = g
        print(f"    {name}: {ints(o.sequences)[:2]}")
    return out


def bart_outputs(m, x, dec):
    with torch.no_grad():
        enc = m.get_encoder()(**x).last_hidden_state
        logits = m(**x, decoder_input_ids=dec).logits
    return enc, logits


def make_bart(out, m, vocab, merges, sources, answers):
    """A BartForConditionalGeneration directory with vocab.json + merges.txt
    (no tokenizer.json) and a generation_config.json."""
    base = fresh(os.path.join(out, "bart"))
    m = copy.deepcopy(m)
    m.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                           decoder_start_token_id=EOS, forced_eos_token_id=EOS, max_length=24,
                                           num_beams=4, length_penalty=1.0, early_stopping=True)
    st, bn = save_both(m, base)
    tok = write_bpe_tokenizer(st, vocab, merges, "legacy")
    write_bpe_tokenizer(bn, vocab, merges, "legacy")
    x = encoded(tok, sources, truncation=True, max_length=100)
    labels = tok(answers, padding=True, return_tensors="pt")["input_ids"]
    dec = shift(labels)
    enc, logits = bart_outputs(m, x, dec)
    for d in (st, bn):
        reload(BartForConditionalGeneration, d, logits, x, lambda mm, xx: mm(**xx, decoder_input_ids=dec).logits)
    gens = gen_refs(m, x)
    write_ref(base, m, dict(
        texts=dict(sources=sources),
        inputs=dict(input_ids=ints(x["input_ids"]), attention_mask=ints(x["attention_mask"]), decoder_input_ids=ints(dec)),
        outputs=dict(encoder_last_hidden_state_0=flat(enc[0, : int(x["attention_mask"][0].sum())])),
        logits=logits_ref(logits, labels),
        generate=gens,
        decoded={k: [tok.decode(s, skip_special_tokens=True) for s in v["sequences"]] for k, v in gens.items()},
    ))


def shift(labels):
    d = labels.new_full(labels.shape, PAD)
    d[:, 1:] = labels[:, :-1]
    d[:, 0] = EOS
    return d


def gen_with_config(gen, x, gc):
    """generate() with a directory's own generation config, nothing else given."""
    with torch.no_grad():
        o = gen.generate(**x, generation_config=copy.deepcopy(gc), return_dict_in_generate=True, output_scores=True)
    g = dict(kwargs={}, sequences=ints(o.sequences))
    if getattr(o, "sequences_scores", None) is not None:
        g["sequences_scores"] = flat(o.sequences_scores)
    print(f"    dir_config: {ints(o.sequences)[:2]}")
    return g


GEN_KEYS = ["max_length", "max_new_tokens", "min_length", "num_beams", "num_return_sequences", "length_penalty",
            "early_stopping", "no_repeat_ngram_size", "decoder_start_token_id", "bos_token_id", "eos_token_id",
            "pad_token_id", "forced_bos_token_id", "forced_eos_token_id"]


def make_rag(out, name, cls, bart, bvocab, merges, wvocab, queries, docs, proj, tok_layout, rag_kw, legacy_gen):
    """A RAG directory made as users make theirs: a DPR question encoder and
    a BART saved, joined with from_pretrained_question_encoder_generator,
    saved with save_pretrained; tokenizers with RagTokenizer.save_pretrained
    (tok_layout "saved") or in the legacy file layout. legacy_gen: generation
    settings written into config.json (top level and generator), as configs
    of transformers 4.x carry them, and no generation_config.json."""
    base = fresh(os.path.join(out, name))
    n_docs = len(docs[0])
    with tempfile.TemporaryDirectory() as t:
        torch.manual_seed(9)
        q = DPRQuestionEncoder(DPRConfig(vocab_size=len(wvocab), projection_dim=proj, **SMALL))
        spread(q, 9 + proj)
        q.save_pretrained(os.path.join(t, "q"))
        bart.save_pretrained(os.path.join(t, "g"))
        m = cls.from_pretrained_question_encoder_generator(os.path.join(t, "q"), os.path.join(t, "g"),
                                                           max_combined_length=96, n_docs=n_docs, **rag_kw)
    m.eval()
    st, bn = save_both(m, base)
    for d in (st, bn):
        if legacy_gen:
            if os.path.exists(os.path.join(d, "generation_config.json")):
                os.remove(os.path.join(d, "generation_config.json"))
            with open(os.path.join(d, "config.json")) as f:
                c = json.load(f)
            c.update(legacy_gen["top"])
            c["generator"].update(legacy_gen["generator"])
            write_json(os.path.join(d, "config.json"), c, compact=False)
        if tok_layout == "saved":
            with tempfile.TemporaryDirectory() as t:
                qt = write_wordpiece_tokenizer(os.path.join(t, "q"), wvocab, True, "vocab-only")
                gt = write_bpe_tokenizer(os.path.join(t, "g"), bvocab, merges, "legacy")
                RagTokenizer(question_encoder=qt, generator=gt).save_pretrained(d)
        else:
            write_wordpiece_tokenizer(os.path.join(d, "question_encoder_tokenizer"), wvocab, True, "legacy")
            write_bpe_tokenizer(os.path.join(d, "generator_tokenizer"), bvocab, merges, "legacy")
    rt = RagTokenizer.from_pretrained(st)
    qtok, gtok = rt.question_encoder, rt.generator
    qx = encoded(qtok, queries)
    with torch.no_grad():
        qv = m.rag.question_encoder(**qx)[0]
    # Sources exactly as RagRetriever.postprocess_docs makes them: the query is
    # the question encoder tokenizer's decoding of the question ids.
    input_strings = qtok.batch_decode(qx["input_ids"], skip_special_tokens=True)
    stub = type("R", (), {})()
    stub.config, stub.generator_tokenizer = m.config, gtok
    dd = [dict(title=[t for t, _ in ds], text=[p for _, p in ds]) for ds in docs]
    ctx_ids, ctx_mask = RagRetriever.postprocess_docs(stub, dd, input_strings, None, n_docs, return_tensors="pt")
    srcs = [rag_source(t, p, input_strings[i], m.config.title_sep, m.config.doc_sep)
            for i, ds in enumerate(docs) for t, p in ds]
    gx = dict(input_ids=ctx_ids, attention_mask=ctx_mask)
    labels = gtok([words(qq, 2) for qq in queries], padding=True, return_tensors="pt")["input_ids"]
    dec_rep = shift(labels).repeat_interleave(n_docs, dim=0)
    with torch.no_grad():
        logits = m.rag.generator(**gx, decoder_input_ids=dec_rep).logits
    g = torch.Generator().manual_seed(11)
    doc_scores = torch.randn((len(queries), n_docs), generator=g)
    with torch.no_grad():  # RAG's marginal loss (for training code)
        loss = m(context_input_ids=ctx_ids, context_attention_mask=ctx_mask, doc_scores=doc_scores, labels=labels,
                 reduce_loss=False, n_docs=n_docs).loss
    loaded = []
    for d in (st, bn):
        mm, info = cls.from_pretrained(d, output_loading_info=True, **F32)
        bad = {k: [x for x in v if "position_ids" not in str(x)] for k, v in info.items() if v}
        bad = {k: v for k, v in bad.items() if v}
        if bad:
            raise SystemExit(f"{d}: loading info {bad}")
        mm.eval()
        with torch.no_grad():
            e1 = (mm.rag.question_encoder(**qx)[0] - qv).abs().max().item()
            e2 = (mm.rag.generator(**gx, decoder_input_ids=dec_rep).logits - logits).abs().max().item()
        print(f"  reload {os.path.relpath(d)}: max |diff| {max(e1, e2):.3g}")
        if max(e1, e2) > 1e-5:
            raise SystemExit(f"{d}: reloaded model differs")
        loaded.append(mm)
    gens = gen_refs(m.rag.generator, gx)
    # What from_pretrained makes of the directory's generation settings
    # (RagSequenceForGeneration has no generation config of its own: it
    # reads the same settings from its config).
    gc = getattr(loaded[0], "generation_config", None)
    if gc is None:
        gc = RagTokenForGeneration.from_pretrained(st, **F32).generation_config
    gens["dir_config"] = gen_with_config(m.rag.generator, gx, gc)
    write_ref(base, m, dict(
        rag=dict(title_sep=m.config.title_sep, doc_sep=m.config.doc_sep, n_docs=n_docs,
                 max_combined_length=m.config.max_combined_length, projection_dim=proj, tokenizer_layout=tok_layout,
                 legacy_generation_settings=legacy_gen),
        texts=dict(queries=queries, docs=[[list(p) for p in ds] for ds in docs], input_strings=input_strings,
                   sources=srcs),
        inputs=dict(question_input_ids=ints(qx["input_ids"]), question_attention_mask=ints(qx["attention_mask"]),
                    question_token_type_ids=ints(qx["token_type_ids"]),
                    context_input_ids=ints(ctx_ids), context_attention_mask=ints(ctx_mask),
                    decoder_input_ids=ints(dec_rep), labels=ints(labels), doc_scores=flat(doc_scores)),
        outputs=dict(question_encoder_pooler_output=flat(qv), rag_loss=flat(loss)),
        logits=logits_ref(logits, labels.repeat_interleave(n_docs, dim=0)),
        generate=gens,
        decoded={k: [gtok.decode(s, skip_special_tokens=True) for s in v["sequences"]] for k, v in gens.items()},
        generation_config={k: getattr(gc, k, None) for k in GEN_KEYS},
    ))


def check_rag(d, ref_path):
    """Load a RAG directory (written by re2g) strictly with transformers and
    recompute the reference's question vectors and generator logits."""
    with open(ref_path) as f:
        ref = json.load(f)
    cls = getattr(transformers, ref["model_class"])
    m, info = cls.from_pretrained(d, output_loading_info=True, **F32)
    bad = {k: v for k, v in info.items() if v}
    print(f"{d}: loading info {bad or 'clean'}")
    m.eval()
    x = ref["inputs"]
    qx = dict(input_ids=torch.tensor(x["question_input_ids"]), attention_mask=torch.tensor(x["question_attention_mask"]),
              token_type_ids=torch.tensor(x["question_token_type_ids"]))
    gx = dict(input_ids=torch.tensor(x["context_input_ids"]), attention_mask=torch.tensor(x["context_attention_mask"]))
    with torch.no_grad():
        qv = m.rag.question_encoder(**qx)[0]
        lg = m.rag.generator(**gx, decoder_input_ids=torch.tensor(x["decoder_input_ids"])).logits
    e1 = float(np.abs(qv.numpy().reshape(-1) - np.array(ref["outputs"]["question_encoder_pooler_output"]["data"])).max())
    L = ref["logits"]
    e2 = max(float(np.abs(lg[..., L["ids"]].numpy().reshape(-1) - np.array(L["at_ids"]["data"])).max()),
             float(np.abs(torch.logsumexp(lg, -1).numpy().reshape(-1) - np.array(L["logsumexp"]["data"])).max()))
    print(f"  question encoder max |diff| {e1:.3g}, generator logits max |diff| {e2:.3g}")
    rt = RagTokenizer.from_pretrained(d)
    print(f"  tokenizers: {type(rt.question_encoder).__name__}, {type(rt.generator).__name__}")
    return 0 if not bad and e1 < 1e-5 and e2 < 1e-5 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "testdata", "hf"))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data"))
    ap.add_argument("--steps", type=int, default=400, help="BART fitting steps")
    ap.add_argument("--check-rag", help="a RAG directory to load strictly and check against --reference")
    ap.add_argument("--reference", help="reference.json for --check-rag")
    a = ap.parse_args()
    if a.check_rag:
        sys.exit(check_rag(a.check_rag, a.reference))
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, tokenizers {tokenizers.__version__}")
    qs, paras = load_squad(a.data)
    rng = random.Random(1)
    # Tokenizer cases: 250 questions, 16 passage openings, the adversarial strings.
    texts = [qs[i] for i in range(0, len(qs), len(qs) // 250)][:250]
    texts += [words(p, 30) for _, p in paras[::100]]
    texts += ADVERSARIAL
    pairs = [(qs[i * 97 % len(qs)], t + " / " + words(p, 60)) for i, (t, p) in enumerate(paras[5::40])]
    make_tokenizers(a.out, a.data, texts, pairs)

    # Model fixtures' texts: real questions and passages (one title quoted, as
    # some KILT titles are, and double spaces, which RAG's layout collapses).
    queries = ["how many brotherhoods are in the Armenian church?", "What is the Monastic Brotherhood?",
               "Who leads the brotherhood of St. James?", "When was Étienne's  café founded?"]
    passages = [(t, words(p, 40)) for t, p in paras[:4]]
    passages[1] = ('"' + passages[1][0] + '"', passages[1][1].replace(" ", "  ", 2))
    passages[3] = (passages[3][0], words(paras[3][1], 120))  # longer than max_length: truncated
    full = bert_vocab(a.data)
    wvocab = small_bert_vocab(full, queries + [t for t, _ in passages] + [p for _, p in passages] + ADVERSARIAL[:3])
    print(f"  small WordPiece vocabulary: {len(wvocab)} tokens")
    make_bert_family(a.out, wvocab, queries, passages)

    bvocab, merges = gpt2_bpe(a.data, 400)
    print(f"  small BPE vocabulary: {len(bvocab)} tokens, {len(merges)} merges")
    with tempfile.TemporaryDirectory() as t:
        btok = write_bpe_tokenizer(t, bvocab, merges, "legacy")
    train = []
    for i in range(2000):
        t, p = paras[rng.randrange(len(paras))]
        q = qs[rng.randrange(len(qs))]
        train.append((rag_source(t, words(p, rng.randint(10, 40)), q), words(q, 2)))
    bart = fit_bart(btok, len(bvocab), train, a.steps)
    sources = [rag_source(t, words(p, 25), q) for q, (t, p) in zip(queries[:3], passages)]
    make_bart(a.out, bart, bvocab, merges, sources, [words(q, 2) for q in queries[:3]])

    docs = [[passages[(i + j) % len(passages)] for j in range(2)] for i in range(2)]
    make_rag(a.out, "rag-token", RagTokenForGeneration, bart, bvocab, merges, wvocab, queries[:2], docs, 0, "legacy",
             dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, decoder_start_token_id=EOS,
                  forced_eos_token_id=EOS),
             legacy_gen=dict(top=dict(num_beams=3, max_length=20, min_length=1),
                             generator=dict(num_beams=4, max_length=30, no_repeat_ngram_size=2, length_penalty=2.0)))
    docs = [[passages[(i + j + 1) % len(passages)] for j in range(2)] for i in range(2)]
    make_rag(a.out, "rag-sequence", RagSequenceForGeneration, bart, bvocab, merges, wvocab, queries[2:], docs, 8,
             "saved", dict(title_sep=" | ", doc_sep=" :: "), legacy_gen=None)
    print(f"testdata/hf: {dir_size(a.out) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
