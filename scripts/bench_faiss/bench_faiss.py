#!/usr/bin/python3
"""Python side of re2g's FAISS benchmark (run with Debian's /usr/bin/python3
and python3-faiss, the same libfaiss 1.7.3 the Go bindings link).

  build:  build the same index from the same vectors, report build seconds
  search: search an index saved by the Go side with the same queries and
          efSearch values; report recall@k, single-query latency, batched QPS

Prints one JSON object on stdout. Driven by scripts/bench_faiss (Go).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import faiss


def load_f32(path, d):
    return np.fromfile(path, dtype="<f4").reshape(-1, d)


def meta_of(path):
    with open(path + ".json") as f:
        return json.load(f)


def augment_base(x, phi):
    norms = (x * x).sum(axis=1)
    extra = np.sqrt(np.maximum(phi - norms, 0)).astype("float32")
    return np.hstack([x, extra[:, None]])


def augment_queries(q):
    return np.hstack([q, np.zeros((q.shape[0], 1), dtype="float32")])


def build(a):
    x = load_f32(a.base, a.d)
    metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
    t0 = time.perf_counter()
    if a.metric == "ip-as-l2":
        phi = float((x * x).sum(axis=1).max())
        x = augment_base(x, phi)
    d = x.shape[1]
    if a.sq8:
        inner = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, a.M, metric)
    else:
        inner = faiss.IndexHNSWFlat(d, a.M, metric)
    inner.hnsw.efConstruction = a.efc
    index = faiss.IndexIDMap(inner)
    if a.sq8:
        index.train(x[: a.train])
    index.add_with_ids(x, np.arange(x.shape[0], dtype="int64"))
    secs = time.perf_counter() - t0
    if a.save:
        faiss.write_index(index, a.save)
    return {"build_s": secs, "ntotal": index.ntotal}


def search(a):
    q = load_f32(a.queries, a.d)
    gt = np.fromfile(a.gt, dtype="<i8").reshape(q.shape[0], -1)[:, : a.k]
    m = meta_of(a.index)
    index = faiss.read_index(a.index)
    hnsw = faiss.downcast_index(index.index)
    ipl2 = m["metric"] == "ip-as-l2"
    out = {"threads": faiss.omp_get_max_threads(), "rows": []}
    for ef in [int(e) for e in a.ef.split(",")]:
        hnsw.hnsw.efSearch = ef
        # batched
        qq = augment_queries(q) if ipl2 else q
        index.search(qq[:10], a.k)  # warm up
        batch_s = float("inf")
        for _ in range(a.batch_reps):  # best of batch_reps: the cores are shared
            t0 = time.perf_counter()
            if ipl2:
                qq = augment_queries(q)
            _, ids = index.search(qq, a.k)
            batch_s = min(batch_s, time.perf_counter() - t0)
        hits = sum(len(set(ids[i]) & set(gt[i])) for i in range(q.shape[0]))
        rec = hits / float(gt.size)
        if a.ids_out:
            ids.astype("<i8").tofile("%s.ef%d.i64" % (a.ids_out, ef))
        # single queries, one call each, at the requested thread count(s)
        singles = {}
        for nt in [int(t) for t in a.single_threads.split(",")]:
            faiss.omp_set_num_threads(nt)
            ns = min(a.single, q.shape[0])
            lat = np.empty(ns)
            same = True
            for i in range(ns):
                t0 = time.perf_counter()
                qi = q[i : i + 1]
                if ipl2:
                    qi = augment_queries(qi)
                _, si = index.search(qi, a.k)
                lat[i] = time.perf_counter() - t0
                same &= bool((si[0] == ids[i]).all())
            faiss.omp_set_num_threads(a.threads)
            singles[str(nt)] = {
                "p50_us": float(np.percentile(lat, 50) * 1e6),
                "p99_us": float(np.percentile(lat, 99) * 1e6),
                "qps": float(ns / lat.sum()),
                "same_as_batch": same,
            }
        out["rows"].append(
            {
                "ef": ef,
                "recall": rec,
                "batch_qps": q.shape[0] / batch_s,
                "single": singles,
            }
        )
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["build", "search"])
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--base")
    p.add_argument("--metric", default="ip")
    p.add_argument("--sq8", action="store_true")
    p.add_argument("--M", type=int, default=32)
    p.add_argument("--efc", type=int, default=80)
    p.add_argument("--train", type=int, default=100000)
    p.add_argument("--save")
    p.add_argument("--index")
    p.add_argument("--queries")
    p.add_argument("--gt")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--ef", default="64")
    p.add_argument("--single", type=int, default=1000)
    p.add_argument("--single-threads", default="2,1")
    p.add_argument("--ids-out")
    p.add_argument("--batch-reps", type=int, default=3)
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    res = build(a) if a.mode == "build" else search(a)
    res["faiss_version"] = faiss.__version__
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
