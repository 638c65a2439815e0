"""Python side of `re2g bench encoder` and `re2g bench generate`: the same models in PyTorch eager.

Uses Hugging Face transformers' DPRContextEncoder when it can be imported
(the GPU machine; or PYTHONPATH pointing at a transformers checkout), else a
faithful nn.Module BERT written here (modeling_bert.py's eager math). Reads
the weights from the model directory's model.safetensors with a small reader.

usage: bench_torch.py encoder|generate MODEL_DIR BATCH SEQ ITERS THREADS DEVICE DTYPE

`generate` needs transformers (BartForConditionalGeneration.generate with the model's
generation_config.json); `encoder` falls back to the nn.Module BERT below without it.
"""
import json
import math
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e["dtype"]
        b, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:end], dtype=np.float32).copy().reshape(e["shape"]))
    return out


class Layer(nn.Module):
    def __init__(self, h, nh, inter, eps):
        super().__init__()
        self.nh = nh
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.i = nn.Linear(h, inter)
        self.out = nn.Linear(inter, h)
        self.ln2 = nn.LayerNorm(h, eps=eps)

    def forward(self, x, mask):
        b, l, h = x.shape
        d = h // self.nh
        split = lambda t: t.view(b, l, self.nh, d).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask
        ctx = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(b, l, h)
        x = self.ln1(self.o(ctx) + x)
        return self.ln2(self.out(nn.functional.gelu(self.i(x))) + x)


class Bert(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], h)
        self.typ = nn.Embedding(cfg["type_vocab_size"], h)
        self.ln = nn.LayerNorm(h, eps=cfg["layer_norm_eps"])
        self.layers = nn.ModuleList(
            Layer(h, cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"])
            for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids, mask):
        l = ids.shape[1]
        x = self.word(ids) + self.pos(torch.arange(l, device=ids.device))[None] + self.typ(torch.zeros_like(ids))
        x = self.ln(x)
        m = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, m)
        return x[:, 0]

    def load(self, w, p):
        self.word.weight.data = w[p + "embeddings.word_embeddings.weight"]
        self.pos.weight.data = w[p + "embeddings.position_embeddings.weight"]
        self.typ.weight.data = w[p + "embeddings.token_type_embeddings.weight"]
        self.ln.weight.data = w[p + "embeddings.LayerNorm.weight"]
        self.ln.bias.data = w[p + "embeddings.LayerNorm.bias"]
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "i": "intermediate.dense",
                 "out": "output.dense", "ln2": "output.LayerNorm"}
        for i, layer in enumerate(self.layers):
            for attr, n in names.items():
                mod = getattr(layer, attr)
                mod.weight.data = w[f"{p}encoder.layer.{i}.{n}.weight"]
                mod.bias.data = w[f"{p}encoder.layer.{i}.{n}.bias"]


def timed(iters, device, f):
    """Best of iters timed calls of f, after one warm-up."""
    times = []
    with torch.no_grad():
        for i in range(iters + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i > 0:
                times.append(time.perf_counter() - t0)
    return min(times)


def fastest_attention(load, iters, device, run):
    """Times the model under each attention implementation transformers offers
    (its default, sdpa, and eager: sdpa is the slower one in 16-bit floats on
    the CPU) and returns the fastest as the peer, naming the others."""
    results = {}
    for attn in ("sdpa", "eager"):
        try:
            model = load(attn).to(device).eval()
        except (ValueError, ImportError) as e:
            print(f"attn_implementation={attn}: {e}", file=sys.stderr)
            continue
        results[attn] = timed(iters, device, lambda: run(model))
        del model
    best = min(results, key=results.get)
    others = ", ".join(f"{a} {t:.3f}s" for a, t in results.items() if a != best)
    return best, results[best], others


def bench_generate(d, batch, seq, iters, device, dt):
    from transformers import BartForConditionalGeneration

    load = lambda attn: BartForConditionalGeneration.from_pretrained(d, torch_dtype=dt, attn_implementation=attn)
    vocab = json.load(open(d + "/config.json"))["vocab_size"]
    ids = (3 + (torch.arange(batch * seq) * 7919) % (vocab - 3)).view(batch, seq).to(device)
    mask = torch.ones_like(ids)
    outs = []
    attn, best, others = fastest_attention(load, iters, device, lambda m: outs.append(m.generate(input_ids=ids, attention_mask=mask)))
    print(f"impl transformers BartForConditionalGeneration.generate, {attn} attention" + (f" ({others})" if others else ""))
    print("best_seconds", best)
    # the work done: tokens of every returned sequence, trailing padding left out
    pad = json.load(open(d + "/config.json"))["pad_token_id"]
    seqs = outs[-1].tolist()
    print("tokens", sum(len(q) - next((i for i, t in enumerate(reversed(q)) if t != pad), len(q)) for q in seqs))


def bench_passages(d, batch, path, iters, device, dt):
    """DPRContextEncoder over real tokenized passages (one JSON line each:
    ids and type ids, as re2g tokenized them) in corpus order, each batch
    padded to its longest member: how a transformers user encodes a corpus."""
    from transformers import DPRContextEncoder

    rows = [json.loads(l) for l in open(path)]
    batches = []
    for lo in range(0, len(rows), batch):
        part = rows[lo:lo + batch]
        n = max(len(r["ids"]) for r in part)
        ids = torch.zeros(len(part), n, dtype=torch.long)
        types = torch.zeros(len(part), n, dtype=torch.long)
        mask = torch.zeros(len(part), n, dtype=torch.long)
        for i, r in enumerate(part):
            ids[i, :len(r["ids"])] = torch.tensor(r["ids"])
            types[i, :len(r["types"])] = torch.tensor(r["types"])
            mask[i, :len(r["ids"])] = 1
        batches.append((ids.to(device), types.to(device), mask.to(device)))
    load = lambda attn: DPRContextEncoder.from_pretrained(d, torch_dtype=dt, attn_implementation=attn)
    run = lambda m: [m(input_ids=i, token_type_ids=t, attention_mask=k).pooler_output.float().cpu() for i, t, k in batches]
    attn, best, others = fastest_attention(load, iters, device, run)
    print(f"impl transformers DPRContextEncoder, corpus order, {attn} attention" + (f" ({others})" if others else ""))
    print("best_seconds", best)


def main():
    what = sys.argv[1]
    if what == "passages":
        d, batch, path, iters, threads, device, dtype = sys.argv[2:9]
        torch.set_num_threads(int(threads))
        dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        return bench_passages(d, int(batch), path, int(iters), device, dt)
    d, batch, seq, iters, threads, device, dtype = sys.argv[2:9]
    batch, seq, iters, threads = int(batch), int(seq), int(iters), int(threads)
    torch.set_num_threads(threads)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if what == "generate":
        return bench_generate(d, batch, seq, iters, device, dt)
    ids = (1000 + (torch.arange(batch * seq) * 7919) % 29000).view(batch, seq).to(device)
    mask = torch.ones(batch, seq, dtype=torch.long, device=device)
    try:
        from transformers import DPRContextEncoder
    except Exception as e:  # no transformers here: the same math, written out
        print(f"transformers not importable ({type(e).__name__}); using nn.Module BERT", file=sys.stderr)
        cfg = json.load(open(d + "/config.json"))
        model = Bert(cfg)
        model.load(read_safetensors(d + "/model.safetensors"), "ctx_encoder.bert_model.")
        model = model.to(dt).to(device).eval()
        print("impl nn.Module BERT")
        print("best_seconds", timed(iters, device, lambda: model(ids, mask).float().cpu()))
        return
    load = lambda attn: DPRContextEncoder.from_pretrained(d, torch_dtype=dt, attn_implementation=attn)
    run = lambda m: m(input_ids=ids, attention_mask=mask).pooler_output.float().cpu()
    attn, best, others = fastest_attention(load, iters, device, run)
    print(f"impl transformers DPRContextEncoder, {attn} attention" + (f" ({others})" if others else ""))
    print("best_seconds", best)

if __name__ == "__main__":
    main()
