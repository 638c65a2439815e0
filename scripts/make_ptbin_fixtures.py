#!/usr/bin/env python3
"""Make the PyTorch checkpoint fixtures under testdata/ptbin/.

Small files written by the real torch.save (zip format, and one in the
legacy pre-1.6 format), for testing torch.OpenPyTorch and model.OpenCheckpoint
(pytorch_model.bin) against, with the expected contents of every tensor
recorded by torch itself in expected.json:

    {"files": {file: {tensor: {"dtype": "float32", "shape": [..], "hex": "..", "values": [..]}}}}

(protocol4.bin and deflate.bin hold tensors.bin's tensors, legacy.bin
module.bin's; "sharded" is the union of the two shards).

"hex" is the tensor's elements in row-major order, little-endian (what a
contiguous copy holds), "values" the same as numbers (exact: every f16, bf16
and f32 value is a float64, printed by repr, which round-trips).

Usage (Debian bookworm: python3-torch 1.13, no PyPI needed; the `python3`
first on PATH may be another interpreter, hence the full path):

    /usr/bin/python3 scripts/make_ptbin_fixtures.py [--out testdata/ptbin]

Files:

    tensors.bin      f32, f16, bf16, f64, i64, i32, bool, a 0-d tensor, an
                     empty one, tied weights (two names, one tensor), another
                     view of the tied storage, a transposed (non-contiguous)
                     tensor, a slice with a storage offset, a step slice, an
                     expanded tensor (stride 0), an nn.Parameter
    module.bin       state_dict() of a tiny nn.Module (OrderedDict with
                     _metadata), one buffer
    protocol4.bin    tensors.bin's dict saved with pickle_protocol=4 (FRAME,
                     MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE)
    deflate.bin      tensors.bin re-zipped with every entry deflated (torch
                     stores entries uncompressed; other zip tools may not)
    legacy.bin       module.bin's dict in the legacy (pre-1.6) format
                     (_use_new_zipfile_serialization=False)
    sharded/         pytorch_model-0000{1,2}-of-00002.bin and
                     pytorch_model.bin.index.json, as transformers shards
    bert/            testdata/parity/bert (config.json + model.safetensors)
                     converted to config.json + pytorch_model.bin, tensors in
                     the safetensors file's order, values bit-identical

Everything is seeded: a rerun gives the same tensors, and the same bytes
except legacy.bin (its storage keys are memory addresses).
"""

import argparse
import collections
import json
import os
import shutil
import struct
import zipfile

import torch


def raw_bytes(t):
    """Row-major little-endian bytes of t's elements."""
    t = t.detach().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def describe(sd):
    out = {}
    for name, t in sd.items():
        t = t.detach()
        if t.dtype == torch.bool:
            values = [bool(v) for v in t.reshape(-1).tolist()]
        elif t.dtype.is_floating_point:
            values = t.double().reshape(-1).tolist()
        else:
            values = t.reshape(-1).tolist()
        out[name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "hex": raw_bytes(t).hex(),
            "values": values,
        }
    return out


def check_roundtrip(path, sd):
    back = torch.load(path)
    assert list(back) == list(sd), (path, list(back), list(sd))
    for k in sd:
        a, b = sd[k].detach(), back[k].detach()
        assert a.dtype == b.dtype and a.shape == b.shape and raw_bytes(a) == raw_bytes(b), (path, k)


def tensors_dict():
    g = torch.Generator().manual_seed(1)
    tied = torch.randn(4, 3, generator=g)
    base = torch.arange(20, dtype=torch.float32) * 0.5 - 3
    grid = torch.randn(4, 6, generator=g)
    sd = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "f64": torch.randn(2, 2, generator=g).double(),
        "i64": torch.tensor([[0, -1, 2**40], [7, -(2**62), 3]], dtype=torch.int64),
        "i32": torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
        "mask": torch.tensor([True, False, True, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "tied.a": tied,
        "tied.b": tied,  # the same tensor under two names: one storage
        "tied.row": tied[2],  # a view of the same storage at offset 6
        "transposed": torch.randn(3, 5, generator=g).t(),  # stride (1, 5)
        "slice": base[7:12],  # storage of 20, offset 7
        "step": grid[1:, ::2],  # offset 6, stride (6, 2)
        "expanded": torch.randn(3, 1, generator=g).expand(3, 4),  # stride (1, 0)
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }
    assert not sd["transposed"].is_contiguous() and sd["slice"].storage_offset() == 7
    assert sd["expanded"].stride() == (1, 0)
    return sd


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(7, 4)
        self.proj = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.register_buffer("position_ids", torch.arange(5).unsqueeze(0))


def read_safetensors(path):
    """A tiny safetensors reader (Debian has no safetensors package): the
    tensors in data order."""
    dts = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = collections.OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        dt = dts[info["dtype"]]
        raw = bytearray(data[b:e])
        if not raw:
            t = torch.empty(0, dtype=dt)
        elif dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.frombuffer(raw, dtype=dt)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata/ptbin")
    ap.add_argument("--parity", default="testdata/parity")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    expected = {}

    def save(sd, rel, **kw):
        p = os.path.join(a.out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        torch.save(sd, p, **kw)
        check_roundtrip(p, sd)
        expected[rel] = describe(sd)

    sd = tensors_dict()
    save(sd, "tensors.bin")
    save(sd, "protocol4.bin", pickle_protocol=4)
    del expected["protocol4.bin"]  # same as tensors.bin

    # deflate.bin: the same archive with every entry compressed
    src = os.path.join(a.out, "tensors.bin")
    dst = os.path.join(a.out, "deflate.bin")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zi = zipfile.ZipInfo(info.filename.replace("tensors/", "deflate/", 1), date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(zi, zin.read(info.filename))
    check_roundtrip(dst, sd)

    torch.manual_seed(2)
    m = Tiny()
    msd = m.state_dict()
    assert isinstance(msd, collections.OrderedDict) and hasattr(msd, "_metadata")
    save(msd, "module.bin")
    save(msd, "legacy.bin", _use_new_zipfile_serialization=False)
    del expected["legacy.bin"]  # same as module.bin

    # sharded, as transformers writes it
    torch.manual_seed(3)
    m2 = Tiny()
    s2 = m2.state_dict()
    names = list(s2)
    shards = {"pytorch_model-00001-of-00002.bin": names[:3], "pytorch_model-00002-of-00002.bin": names[3:]}
    weight_map = {}
    total = 0
    for fname, ns in shards.items():
        part = collections.OrderedDict((n, s2[n]) for n in ns)
        p = os.path.join(a.out, "sharded", fname)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        torch.save(part, p)
        check_roundtrip(p, part)
        for n in ns:
            weight_map[n] = fname
            total += s2[n].numel() * s2[n].element_size()
    with open(os.path.join(a.out, "sharded", "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
        f.write("\n")
    expected["sharded"] = describe(s2)

    # the parity BERT fixture as pytorch_model.bin
    bert = read_safetensors(os.path.join(a.parity, "bert", "model.safetensors"))
    os.makedirs(os.path.join(a.out, "bert"), exist_ok=True)
    shutil.copyfile(os.path.join(a.parity, "bert", "config.json"), os.path.join(a.out, "bert", "config.json"))
    p = os.path.join(a.out, "bert", "pytorch_model.bin")
    torch.save(bert, p)
    check_roundtrip(p, bert)

    # one line per tensor
    lines = ['{"torch": %s, "files": {' % json.dumps(torch.__version__)]
    for i, rel in enumerate(sorted(expected)):
        lines.append(' %s: {' % json.dumps(rel))
        ts = sorted(expected[rel])
        for j, n in enumerate(ts):
            lines.append('  %s: %s%s' % (json.dumps(n), json.dumps(expected[rel][n], sort_keys=True), "," if j + 1 < len(ts) else ""))
        lines.append(' }' + ("," if i + 1 < len(expected) else ""))
    lines.append("}}")
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        f.write("\n".join(lines) + "\n")
    json.load(open(os.path.join(a.out, "expected.json")))


if __name__ == "__main__":
    main()
