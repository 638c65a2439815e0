#!/usr/bin/env python3
"""Make the Hugging Face parity fixtures under testdata/parity/.

Tiny random checkpoints in real Hugging Face layouts (config.json,
model.safetensors, sharded index, f16 weights, generation_config.json), each
with reference outputs computed by Hugging Face `transformers` itself, so that
re2g's Go models can be tested against them. See testdata/parity/README.md
for what each fixture holds.

Usage:

    scripts/make_parity_fixtures.py [--out testdata/parity] [--only bert,bart,...]

Two ways to run it:

1. Where transformers is installed normally (pip; e.g. transformers 5.x with
   torch 2.x and the `safetensors` package): just run it with that python.

2. On the Debian bookworm build machine (no PyPI): Debian's python3-torch
   1.13 and a source checkout of transformers v4.38.2 plus huggingface_hub
   v0.21.4, neither committed here (v4.45.1 with huggingface_hub 0.25.2 also
   runs on torch 1.13, given a stub `tokenizers` module, which 4.45 imports
   unconditionally; 4.38.2 needs none):

       apt-get install python3-torch python3-numpy python3-regex python3-yaml \
           python3-packaging python3-filelock python3-requests python3-tqdm \
           python3-fsspec python3-typing-extensions
       # transformers and huggingface_hub sources, e.g. from git:
       git -C transformers archive v4.38.2 src | tar -x -C /tmp/hf/transformers
       git -C huggingface_hub archive v0.21.4 src | tar -x -C /tmp/hf/hub
       mkdir -p /tmp/hf/site && cd /tmp/hf/site
       ln -s /tmp/hf/transformers/src/transformers transformers
       ln -s /tmp/hf/hub/src/huggingface_hub huggingface_hub
       # transformers checks its dependencies' versions through their
       # distribution metadata, which a source tree lacks:
       mkdir huggingface_hub-0.21.4.dist-info transformers-4.38.2.dist-info
       printf 'Metadata-Version: 2.1\\nName: huggingface-hub\\nVersion: 0.21.4\\n' \
           > huggingface_hub-0.21.4.dist-info/METADATA
       printf 'Metadata-Version: 2.1\\nName: transformers\\nVersion: 4.38.2\\n' \
           > transformers-4.38.2.dist-info/METADATA
       PYTHONPATH=/tmp/hf/site /usr/bin/python3 scripts/make_parity_fixtures.py

   Debian bookworm has no python3-safetensors (its core is Rust) and
   transformers refuses to import without it. When the `safetensors` package
   is missing, this script provides a small pure-Python one of its own
   (SAFETENSORS_SHIM_INIT and SAFETENSORS_SHIM_TORCH below: save_file,
   load_file, safe_open, storage_ptr, storage_size; the exact file format) in a temporary directory on sys.path, so that `save_pretrained(...,
   safe_serialization=True)` runs Hugging Face's own code (tied-weight removal,
   sharding, index file, {"format": "pt"} metadata) and only the byte writer is
   ours. The real package is used whenever it is installed.

To check another transformers/torch against the committed fixtures (e.g. on
a machine with transformers 5.x): load them there and recompute every
recorded output (including generate) from the recorded inputs:

    python3 scripts/make_parity_fixtures.py --verify testdata/parity

or make fresh ones elsewhere and compare:

    python3 scripts/make_parity_fixtures.py --out /tmp/parity --compare-to testdata/parity

(the BART fit runs again there, so its weights match only where torch's
training arithmetic matches; the encoders' weights are seeded init only).

Everything is seeded; the outputs are recorded as float32 (9 significant
digits, which round-trips float32), with the transformers and torch versions.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile

SAFETENSORS_SHIM_INIT = r'''
"""Pure-Python stand-in for the safetensors package (made by
scripts/make_parity_fixtures.py); only what transformers needs."""
import json
import struct

__version__ = "0.4.2"

_DT = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _read_header(f):
    n = struct.unpack("<Q", f.read(8))[0]
    if n > 100 << 20:
        raise ValueError("safetensors header too large")
    header = json.loads(f.read(n).decode("utf-8"))
    return 8 + n, header


class safe_open:
    def __init__(self, filename, framework="pt", device="cpu"):
        self._filename = filename
        with open(filename, "rb") as f:
            self._start, self._header = _read_header(f)
        self._meta = self._header.pop("__metadata__", None)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def metadata(self):
        return self._meta

    def keys(self):
        return sorted(self._header)

    def get_tensor(self, name):
        import torch
        info = self._header[name]
        b, e = info["data_offsets"]
        with open(self._filename, "rb") as f:
            f.seek(self._start + b)
            raw = bytearray(f.read(e - b))
        dt = info["dtype"]
        if dt == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=torch.bfloat16)
        else:
            tdt = getattr(torch, _DT[dt])
            t = torch.frombuffer(raw, dtype=tdt) if raw else torch.empty(0, dtype=tdt)
        return t.reshape(info["shape"]).clone()

    def get_slice(self, name):
        return self.get_tensor(name)
'''

SAFETENSORS_SHIM_TORCH = r'''
import json
import struct
import sys

import torch

from . import safe_open

_NAME = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
         torch.uint8: "U8", torch.bool: "BOOL"}


def storage_ptr(tensor):
    try:
        return tensor.untyped_storage().data_ptr()
    except Exception:
        try:
            return tensor.storage().data_ptr()
        except NotImplementedError:
            return 0


def storage_size(tensor):
    try:
        return tensor.untyped_storage().nbytes()
    except AttributeError:
        return tensor.storage().size() * tensor.element_size()


def _bytes(t):
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def save(tensors, metadata=None):
    assert sys.byteorder == "little"
    # Data order as the reference writer: larger element size first, then name.
    names = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for k in names:
        t = tensors[k]
        if t.dtype not in _NAME:
            raise ValueError(f"{k}: dtype {t.dtype} not supported")
        b = _bytes(t)
        header[k] = {"dtype": _NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def save_file(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(save(tensors, metadata))


def load_file(filename, device="cpu"):
    with safe_open(filename, framework="pt") as f:
        return {k: f.get_tensor(k).to(device) for k in f.keys()}
'''


def ensure_safetensors():
    """Put the pure-Python safetensors stand-in on sys.path when the real
    package is missing; returns a description for the reference files."""
    if importlib.util.find_spec("safetensors") is not None:
        import importlib.metadata as md

        return "safetensors " + md.version("safetensors")
    d = tempfile.mkdtemp(prefix="st-shim-")
    os.makedirs(os.path.join(d, "safetensors"))
    with open(os.path.join(d, "safetensors", "__init__.py"), "w") as f:
        f.write(SAFETENSORS_SHIM_INIT)
    with open(os.path.join(d, "safetensors", "torch.py"), "w") as f:
        f.write(SAFETENSORS_SHIM_TORCH)
    info = os.path.join(d, "safetensors-0.4.2.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: safetensors\nVersion: 0.4.2\n")
    sys.path.insert(0, d)
    return "pure-Python writer in scripts/make_parity_fixtures.py (no safetensors package)"


SAFETENSORS_IMPL = ensure_safetensors()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GenerationConfig,
)

# transformers 4.56 renamed from_pretrained's torch_dtype to dtype.
_TV = tuple(int(x) for x in transformers.__version__.split(".")[:2])
F32 = {"dtype": torch.float32} if _TV >= (4, 56) else {"torch_dtype": torch.float32}

VOCAB = 1000
SMALL = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    type_vocab_size=2,
    initializer_range=0.2,
)

# ---------------------------------------------------------------- helpers


def flat(t):
    """A float tensor as {"shape", "data"} with float32 values (9 digits)."""
    a = t.detach().to(torch.float32).cpu().numpy()
    return {"shape": list(a.shape), "data": [float("%.9g" % x) for x in a.reshape(-1).tolist()]}


def ints(t):
    return t.detach().cpu().tolist()


def spread(model, seed, std=0.3, emb_std=0.5):
    """Re-initialise the weights wider than HF's default so that tiny models
    give outputs that differ per input: N(0, std) matrices, N(0, emb_std)
    embeddings, N(0, 0.2) biases, LayerNorm weights U(0.5, 1.5), and a
    N(0, 0.05) pooler so that its tanh does not saturate."""
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
            elif "pooler" in name:  # keep tanh(pooler) off saturation
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "embed" in name or "shared" in name:
                p.copy_(emb_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def batch(seed, lengths, pair=True, low=3, high=VOCAB, pad=0):
    """Random ids < high, right-padded with pad; token_type_ids 0 then 1
    for the second half of each row when pair."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.full((len(lengths), T), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), T), dtype=torch.long)
    tt = torch.zeros((len(lengths), T), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(low, high, (n,), generator=g)
        mask[i, :n] = 1
        if pair:
            tt[i, n // 2 : n] = 1
    return ids, mask, tt


def save(model, out, name, **kw):
    d = os.path.join(out, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    try:
        model.save_pretrained(d, safe_serialization=True, **kw)
    except TypeError:  # releases where safetensors is the only format
        model.save_pretrained(d, **kw)
    return d


def reload(cls, d, ref_model, check_inputs):
    """Load d back with HF and check that nothing is missing and that it
    computes what ref_model computes (f32 upcast of stored weights)."""
    m, info = cls.from_pretrained(d, output_loading_info=True, **F32)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise SystemExit(f"{d}: loading info {bad}")
    m.eval()
    if ref_model is not None:
        with torch.no_grad():
            a = ref_model(**check_inputs)[0]
            b = m(**check_inputs)[0]
        err = (a.float() - b.float()).abs().max().item()
        print(f"  reload {os.path.basename(d)}: max |diff| vs in-memory model {err:.3g}")
    return m


def write_ref(d, model, obj):
    obj = dict(
        model_class=type(model).__name__,
        transformers_version=transformers.__version__,
        torch_version=torch.__version__,
        safetensors=SAFETENSORS_IMPL,
        compute_dtype="float32",
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        **obj,
    )
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"  {os.path.relpath(d)}: {sorted(os.listdir(d))} {total / 1024:.0f} KiB")


# ---------------------------------------------------------------- BERT family


def bert_inputs():
    ids, mask, tt = batch(11, [12, 7, 9, 3])
    ids[:, 0] = 101 % VOCAB  # a CLS-like first token, as real inputs have
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)


def make_bert(out):
    torch.manual_seed(1)
    m = BertModel(BertConfig(**SMALL), add_pooling_layer=True)
    spread(m, 1)
    m.eval()
    x = bert_inputs()
    variants = [
        ("bert", {}, m),
        ("bert-sharded", {}, m),
        ("bert-f16", {}, m),
    ]
    for name, kw, model in variants:
        if name == "bert-f16":
            model = BertModel(BertConfig(**SMALL), add_pooling_layer=True)
            model.load_state_dict(m.state_dict())
            model = model.half()
        if name == "bert-sharded":
            d = save_two_shards(model, out, name)
        else:
            d = save(model, out, name, **kw)
        r = reload(BertModel, d, m, x)
        with torch.no_grad():
            o = r(**x)
        write_ref(
            d,
            r,
            dict(
                stored_dtype="float16" if name == "bert-f16" else "float32",
                inputs={k: ints(v) for k, v in x.items()},
                outputs=dict(last_hidden_state=flat(o.last_hidden_state), pooler_output=flat(o.pooler_output)),
            ),
        )


def save_two_shards(model, out, name):
    total = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    for frac in (0.5, 0.55, 0.6, 0.65, 0.7, 0.45, 0.75, 0.8):
        d = save(model, out, name, max_shard_size=int(total * frac))
        shards = [f for f in os.listdir(d) if f.endswith(".safetensors")]
        if len(shards) == 2 and os.path.exists(os.path.join(d, "model.safetensors.index.json")):
            return d
    raise SystemExit(f"{name}: could not make exactly two shards")


def make_dpr(out):
    try:
        from transformers import DPRConfig, DPRContextEncoder, DPRQuestionEncoder
    except ImportError as e:
        print(f"  skipping DPR: {e}")
        return

    x = bert_inputs()
    x.pop("token_type_ids")
    ids = x["input_ids"]
    x["token_type_ids"] = torch.zeros_like(ids)
    for name, cls, proj, seed in (
        ("dpr-question", DPRQuestionEncoder, 0, 2),
        ("dpr-ctx", DPRContextEncoder, 16, 3),
    ):
        torch.manual_seed(seed)
        m = cls(DPRConfig(projection_dim=proj, **SMALL))
        spread(m, seed)
        m.eval()
        d = save(m, out, name)
        r = reload(cls, d, m, x)
        with torch.no_grad():
            o = r(**x)
        write_ref(
            d,
            r,
            dict(
                projection_dim=proj,
                inputs={k: ints(v) for k, v in x.items()},
                outputs=dict(pooler_output=flat(o.pooler_output)),
            ),
        )


def make_cross_encoders(out):
    x = bert_inputs()
    for labels, seed in ((2, 4), (1, 5)):
        torch.manual_seed(seed)
        m = BertForSequenceClassification(BertConfig(num_labels=labels, **SMALL))
        spread(m, seed)
        m.eval()
        d = save(m, out, f"cross-encoder-{labels}")
        r = reload(BertForSequenceClassification, d, m, x)
        with torch.no_grad():
            o = r(**x)
        write_ref(
            d,
            r,
            dict(num_labels=labels, inputs={k: ints(v) for k, v in x.items()}, outputs=dict(logits=flat(o.logits))),
        )


# ---------------------------------------------------------------- BART

BOS, PAD, EOS = 0, 1, 2
TOK_LO, TOK_HI = 4, 4 + 60  # the toy task's tokens (vocab stays VOCAB)


def toy_pair(g, n):
    """Source: n random tokens; target: the source reversed, then the first
    three tokens of that again (a small learnable map whose outputs repeat a
    trigram, so that no_repeat_ngram_size=3 changes them)."""
    x = torch.randint(TOK_LO, TOK_HI, (n,), generator=g)
    r = x.flip(0)
    return x, torch.cat([r, r[:3]])


def toy_batch(g, B, lo=3, hi=10):
    ns = torch.randint(lo, hi + 1, (B,), generator=g).tolist()
    srcs, tgts = zip(*[toy_pair(g, n) for n in ns])
    return srcs, tgts


def pad_src(srcs):
    """BART encoder input: <s> x </s>, right-padded with <pad>."""
    T = max(len(s) for s in srcs) + 2
    ids = torch.full((len(srcs), T), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(srcs):
        row = torch.cat([torch.tensor([BOS]), s, torch.tensor([EOS])])
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def pad_labels(tgts):
    """labels: <s> y </s> (BART with forced BOS), padded with -100."""
    T = max(len(t) for t in tgts) + 2
    lab = torch.full((len(tgts), T), -100, dtype=torch.long)
    for i, t in enumerate(tgts):
        row = torch.cat([torch.tensor([BOS]), t, torch.tensor([EOS])])
        lab[i, : len(row)] = row
    return lab


def shift_right(labels, start):
    d = labels.new_full(labels.shape, PAD)
    d[:, 1:] = labels[:, :-1]
    d[:, 0] = start
    d.masked_fill_(d == -100, PAD)
    return d


def make_bart(out, steps):
    cfg = BartConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        decoder_start_token_id=EOS,
        init_std=0.1,
    )
    torch.manual_seed(6)
    m = BartForConditionalGeneration(cfg)
    spread(m, 6, std=0.15, emb_std=0.3)
    with torch.no_grad():  # a non-zero final_logits_bias (a buffer), as after real fine-tuning
        g = torch.Generator().manual_seed(60)
        m.final_logits_bias.copy_(0.1 * torch.randn(m.final_logits_bias.shape, generator=g))
    # Fit briefly so that generation gives real sequences ending with </s>.
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(7)
    m.train()
    for step in range(steps):
        srcs, tgts = toy_batch(g, 64)
        ids, mask = pad_src(srcs)
        lab = pad_labels(tgts)
        loss = m(input_ids=ids, attention_mask=mask, decoder_input_ids=shift_right(lab, EOS), labels=lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  bart step {step} loss {loss.item():.3f}")
    m.eval()
    m.generation_config = GenerationConfig(
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        decoder_start_token_id=EOS,
        forced_bos_token_id=BOS,
        forced_eos_token_id=EOS,
        max_length=24,
        min_length=0,
        num_beams=4,
        no_repeat_ngram_size=3,
        length_penalty=1.0,
        early_stopping=True,
    )

    g = torch.Generator().manual_seed(8)
    srcs, tgts = toy_batch(g, 3, lo=3, hi=9)
    srcs = list(srcs)
    srcs[1] = srcs[1][:3]  # a short, padded row
    tgts = [torch.cat([s.flip(0), s.flip(0)[:3]]) for s in srcs]
    ids, mask = pad_src(srcs)
    lab = pad_labels(tgts)
    dec = shift_right(lab, EOS)
    dec_mask = (lab != -100).long()
    dec_mask[:, 0] = 1
    x = dict(input_ids=ids, attention_mask=mask)

    d = save(m, out, "bart")
    r = reload(BartForConditionalGeneration, d, m, dict(x, decoder_input_ids=dec, decoder_attention_mask=dec_mask))
    with torch.no_grad():
        enc = r.get_encoder()(**x).last_hidden_state
        logits = r(**x, decoder_input_ids=dec, decoder_attention_mask=dec_mask).logits

    cases = [
        ("greedy", dict(num_beams=1, no_repeat_ngram_size=0, min_length=0, early_stopping=False)),
        ("greedy_no_repeat_3", dict(num_beams=1, no_repeat_ngram_size=3, min_length=0, early_stopping=False)),
        ("beam4", dict(num_beams=4, num_return_sequences=4, length_penalty=1.0, no_repeat_ngram_size=0,
                       min_length=0, early_stopping=True)),
        ("beam4_lp2_no_repeat_3", dict(num_beams=4, num_return_sequences=4, length_penalty=2.0,
                                       no_repeat_ngram_size=3, min_length=0, early_stopping=True)),
        ("beam4_min_length_12", dict(num_beams=4, num_return_sequences=4, length_penalty=0.5,
                                     no_repeat_ngram_size=0, min_length=12, early_stopping=False)),
        ("beam4_return1_max8", dict(num_beams=4, num_return_sequences=1, length_penalty=1.0,
                                    no_repeat_ngram_size=0, min_length=0, max_length=8, early_stopping=True)),
    ]
    gens = {}
    for name, kw in cases:
        kw = dict(max_length=24, do_sample=False, **kw) if "max_length" not in kw else dict(do_sample=False, **kw)
        with torch.no_grad():
            o = r.generate(**x, **kw, return_dict_in_generate=True, output_scores=True)
        g = dict(kwargs=kw, sequences=ints(o.sequences))
        if getattr(o, "sequences_scores", None) is not None:
            g["sequences_scores"] = flat(o.sequences_scores)
        gens[name] = g
        print(f"  {name}: {ints(o.sequences)[:4]}")

    write_ref(
        d,
        r,
        dict(
            note=(
                "toy task: source <s> x </s>; target <s> r r[:3] </s> with r = reverse(x). generate() kwargs are given per case; "
                "the rest comes from generation_config.json (decoder_start_token_id, forced_bos/eos, pad, eos)."
            ),
            inputs=dict(
                input_ids=ints(ids),
                attention_mask=ints(mask),
                decoder_input_ids=ints(dec),
                decoder_attention_mask=ints(dec_mask),
            ),
            outputs=dict(encoder_last_hidden_state=flat(enc), logits=flat(logits)),
            generate=gens,
        ),
    )


def compare(new, ref, tol):
    """Compare fixtures made here (new) with others (ref, e.g. the committed
    ones made by another transformers version); returns the number of
    failures: output differences over tol, different generated ids."""
    bad = 0
    print(f"comparing {new} with {ref} (tol {tol:g})")
    for d in sorted(os.listdir(ref)):
        rf, nf = os.path.join(ref, d, "reference.json"), os.path.join(new, d, "reference.json")
        if not os.path.exists(rf) or not os.path.exists(nf):
            continue
        with open(rf) as f:
            r = json.load(f)
        with open(nf) as f:
            n = json.load(f)
        for k, v in r["outputs"].items():
            err = float(np.abs(np.array(v["data"]) - np.array(n["outputs"][k]["data"])).max())
            bad += err > tol
            print(f"  {d:16} {k:26} max|diff| {err:.3g}")
        for k, v in r.get("generate", {}).items():
            w = n["generate"][k]
            same = v["sequences"] == w["sequences"]
            bad += not same
            msg = "same ids" if same else "DIFFERENT ids"
            if "sequences_scores" in v and "sequences_scores" in w:
                err = float(np.abs(np.array(v["sequences_scores"]["data"]) - np.array(w["sequences_scores"]["data"])).max())
                bad += err > tol
                msg += f", scores max|diff| {err:.3g}"
            print(f"  {d:16} {k:26} {msg}")
    return bad


def verify(ref, tol):
    """Load the fixtures in ref with this transformers, recompute every
    recorded output from the recorded inputs, and compare; returns the
    number of failures."""
    bad = 0
    print(f"verifying {ref} with transformers {transformers.__version__}, torch {torch.__version__} (tol {tol:g})")
    for d in sorted(os.listdir(ref)):
        rf = os.path.join(ref, d, "reference.json")
        if not os.path.exists(rf):
            continue
        with open(rf) as f:
            r = json.load(f)
        cls = getattr(transformers, r["model_class"])
        m = cls.from_pretrained(os.path.join(ref, d), **F32).eval()
        x = {k: torch.tensor(v) for k, v in r["inputs"].items()}
        got = {}
        with torch.no_grad():
            if r["model_class"] == "BartForConditionalGeneration":
                enc = {k: x[k] for k in ("input_ids", "attention_mask")}
                got["encoder_last_hidden_state"] = m.get_encoder()(**enc).last_hidden_state
                got["logits"] = m(**x).logits
            else:
                o = m(**x)
                got = {k: getattr(o, k) for k in r["outputs"]}
        for k, v in r["outputs"].items():
            err = float(np.abs(np.array(v["data"]) - got[k].float().reshape(-1).numpy()).max())
            bad += err > tol
            print(f"  {d:16} {k:26} max|diff| {err:.3g}")
        for k, v in r.get("generate", {}).items():
            with torch.no_grad():
                o = m.generate(**enc, **v["kwargs"], return_dict_in_generate=True, output_scores=True)
            same = ints(o.sequences) == v["sequences"]
            bad += not same
            msg = "same ids" if same else "DIFFERENT ids"
            if "sequences_scores" in v:
                err = float(np.abs(np.array(v["sequences_scores"]["data"]) - o.sequences_scores.float().numpy()).max())
                bad += err > tol
                msg += f", scores max|diff| {err:.3g}"
            print(f"  {d:16} {k:26} {msg}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "parity"))
    ap.add_argument("--only", default="bert,dpr,cross,bart")
    ap.add_argument("--bart-steps", type=int, default=600)
    ap.add_argument("--compare-to", help="fixtures directory to compare the new ones with (e.g. testdata/parity)")
    ap.add_argument("--verify", help="only load the fixtures in this directory and recompute their references")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if a.verify:
        bad = verify(a.verify, a.tol)
        print("all within tolerance" if not bad else f"{bad} differences")
        sys.exit(1 if bad else 0)
    os.makedirs(a.out, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {SAFETENSORS_IMPL}")
    only = set(a.only.split(","))
    if "bert" in only:
        make_bert(a.out)
    if "dpr" in only:
        make_dpr(a.out)
    if "cross" in only:
        make_cross_encoders(a.out)
    if "bart" in only:
        make_bart(a.out, a.bart_steps)
    if a.compare_to:
        bad = compare(a.out, a.compare_to, a.tol)
        print("all within tolerance" if not bad else f"{bad} differences")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
