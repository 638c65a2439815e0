#!/usr/bin/python3
"""Xapian half of `make bench-bm25` (Debian python3-xapian, /usr/bin/python3).

Indexes a BEIR corpus.jsonl with Xapian (English Porter2 stemming, Lucene's 33
stop words, title and text as one field, no positions), then times BM25
(k1, b as given; k2 = 0, k3 = 1) searches for every query, on one process and
on N processes, and writes one JSON object with the timings and the run
(top-k ids per query) for the Go side to score with the same metric code.
"""
import json
import multiprocessing as mp
import sys
import tempfile
import time

import xapian

STOP = ("a an and are as at be but by for if in into is it no not of on or such that the their "
        "then there these they this to was will with").split()


def termgen():
    tg = xapian.TermGenerator()
    tg.set_stemmer(xapian.Stem("english"))
    tg.set_stemming_strategy(xapian.TermGenerator.STEM_ALL)
    st = xapian.SimpleStopper()
    for w in STOP:
        st.add(w)
    tg.set_stopper(st)
    tg.set_stopper_strategy(xapian.TermGenerator.STOP_ALL)
    return tg, st


def build(corpus, dbdir):
    db = xapian.WritableDatabase(dbdir, xapian.DB_CREATE_OR_OVERWRITE)
    tg, _ = termgen()
    n = 0
    t0 = time.perf_counter()
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            doc = xapian.Document()
            tg.set_document(doc)
            text = d.get("title", "")
            text = (text + " " + d.get("text", "")) if text else d.get("text", "")
            tg.index_text_without_positions(text)
            doc.set_data(d["_id"])
            db.add_document(doc)
            n += 1
    db.commit()
    db.close()
    return n, time.perf_counter() - t0


def make_query(tg, text):
    doc = xapian.Document()
    tg.set_document(doc)
    tg.index_text_without_positions(text)
    return xapian.Query(xapian.Query.OP_OR, [xapian.Query(t.term, t.wdf) for t in doc.termlist()])


def search_all(dbdir, queries, k, k1, b, passes, barrier=None):
    db = xapian.Database(dbdir)
    enq = xapian.Enquire(db)
    enq.set_weighting_scheme(xapian.BM25Weight(k1, 0, 1, b, 0.5))
    tg, _ = termgen()
    if barrier is not None:
        barrier.wait()
    run = {}
    t0 = time.perf_counter()
    for p in range(passes):
        for qid, text in queries:
            enq.set_query(make_query(tg, text))
            mset = enq.get_mset(0, k)
            if p == 0:
                run[qid] = [[m.document.get_data().decode(), m.weight] for m in mset]
    return time.perf_counter() - t0, run


def worker(args):
    dbdir, queries, k, k1, b, passes, barrier = args
    el, _ = search_all(dbdir, queries, k, k1, b, passes, barrier)
    return el


_barrier = None


def _init(b):
    global _barrier
    _barrier = b


def _work(args):
    return worker(args + (_barrier,))


def main():
    corpus, queries_path, k, k1, b, passes, procs = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    queries = []
    with open(queries_path, encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries.append((q["_id"], q["text"]))
    with tempfile.TemporaryDirectory(prefix="re2g-xapian-") as tmp:
        dbdir = tmp + "/db"
        n, index_s = build(corpus, dbdir)
        one_s, run = search_all(dbdir, queries, k, k1, b, passes)
        barrier = mp.Barrier(procs)
        parts = [queries[i::procs] for i in range(procs)]
        with mp.Pool(procs, initializer=_init, initargs=(barrier,)) as pool:
            t0 = time.perf_counter()
            els = pool.map(_work, [(dbdir, part, k, k1, b, passes) for part in parts])
            wall = time.perf_counter() - t0
        json.dump({
            "version": xapian.version_string(),
            "docs": n, "index_s": index_s,
            "queries": len(queries) * passes,
            "one_s": one_s, "multi_s": max(els), "multi_wall_s": wall,
            "run": run,
        }, sys.stdout)


if __name__ == "__main__":
    main()
