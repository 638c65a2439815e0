#!/usr/bin/python3
"""Python side of re2g's FAISS benchmark (run with Debian's /usr/bin/python3
and python3-faiss, the same libfaiss 1.7.3 the Go bindings link).

  build:  build the same index from the same vectors, report build seconds
  serve:  load an index saved by the Go side and answer timed search
          requests (JSON lines on stdin/stdout): batched search of all
          queries, or single-query calls over a range, at a given efSearch
          and thread count; the Go side interleaves them with its own.

build prints one JSON object on stdout. Driven by scripts/bench_faiss (Go).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import faiss


def load_f32(path, d):
    return np.fromfile(path, dtype="<f4").reshape(-1, d)


def build(a):
    x = load_f32(a.base, a.d)
    metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
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
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if a.save:
        faiss.write_index(index, a.save)
    return {"build_s": secs, "build_cpu_s": cpu, "ntotal": index.ntotal}


def serve(a):
    """Answer search requests (JSON lines on stdin, one JSON line back each)
    so that the Go side can interleave its own timings with Python's on the
    same (shared) cores."""
    q = load_f32(a.queries, a.d)
    index = faiss.read_index(a.index)
    hnsw = faiss.downcast_index(index.index)
    index.search(q[:10], a.k)  # warm up
    reply({"ready": True, "threads": faiss.omp_get_max_threads(), "faiss_version": faiss.__version__})
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "ef":
            hnsw.hnsw.efSearch = req["ef"]
            reply({})
        elif op == "batch":
            t0 = time.perf_counter()
            _, ids = index.search(q, a.k)
            secs = time.perf_counter() - t0
            reply({"secs": secs, "ids": ids.ravel().tolist()})
        elif op == "single":
            faiss.omp_set_num_threads(req["threads"])
            s0, n = req["start"], req["count"]
            lat = []
            for i in range(s0, s0 + n):
                t0 = time.perf_counter()
                index.search(q[i : i + 1], a.k)
                lat.append(time.perf_counter() - t0)
            faiss.omp_set_num_threads(a.threads)
            reply({"lat": lat})
        elif op == "quit":
            return None
        else:
            raise ValueError("unknown op %r" % op)
    return None


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["build", "serve"])
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
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    if a.mode == "serve":
        serve(a)
        return
    res = build(a)
    res["faiss_version"] = faiss.__version__
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
