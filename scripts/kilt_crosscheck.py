#!/usr/bin/python3
"""Cross-checks `re2g eval kilt` against KILT's own evaluation scripts.

Generates random gold and prediction files full of edge cases (several gold
outputs and evidence sets, duplicate and partial provenance, numeric ids,
articles, punctuation, non-ASCII case and white space, "." sentence splits for
ROUGE, empty answers, provenance texts), optionally adds files built from a
SQuAD v1.1 JSON file, scores every pair with KILT's eval_downstream and
eval_retrieval (imported from a KILT checkout given on the command line, with
the `rouge` package from a checkout given too), and with `re2g eval kilt`, and
reports the largest difference per metric. Exit status 1 when any metric
differs by 5e-5 or more (i.e. at 4 decimals).

Nothing of KILT or rouge is part of re2g; bring your own checkouts:
  /usr/bin/python3 scripts/kilt_crosscheck.py --kilt PATH/KILT --rouge PATH/rouge \
      --re2g bin/re2g [--files 40] [--seed 1] [--squad ../shared/data/squadshifts/new_wiki_v1.0.json]
KILT's kilt_utils imports nltk only for a BLEU helper that evaluation never
calls; when nltk is not installed a stub module stands in for it.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

WORDS = ["a", "an", "the", "The", "AN", "paris", "Paris", "city", "of", "light", "Σίσυφος", "ΟΔΟΣ",
         "İstanbul", "straße", "Straße", "café", "naïve", "x_y", "the_end", "U.S.", "e.g.", "1,000",
         "42", "½", "mr.", "it's", "don't", "(big)", "new-york", "—", "“quoted”", "Œuvre", "ǅemal"]
SPACES = [" ", " ", " ", "  ", "\t", "\u00a0", "\x1c", "\u2003", "\n"]


def rtext(rng, lo=1, hi=8):
    n = rng.randint(lo, hi)
    out = []
    for i in range(n):
        out.append(rng.choice(WORDS))
        if rng.random() < 0.15:
            out.append(rng.choice([".", ",", "!", "?", ";", ". "]))
        out.append(rng.choice(SPACES))
    s = "".join(out)
    if rng.random() < 0.3:
        s = rng.choice(SPACES) + s
    return s


def rid(rng, pool):
    v = rng.choice(pool)
    r = rng.random()
    if r < 0.3:
        return int(v)
    if r < 0.4:
        return " %s " % v
    return str(v)


def rprov(rng, pool, keys_pool, with_text=False, answers=(), titles=()):
    p = {}
    if rng.random() < 0.95:
        p["wikipedia_id"] = rid(rng, pool)
    if rng.random() < 0.8:
        p["start_paragraph_id"] = rng.choice([0, 1, 2, "1", " 2"])
    if rng.random() < 0.6:
        p["section"] = rng.choice(["Section::::Abstract.", "History", 3])
    p["title"] = rng.choice(titles) if titles and rng.random() < 0.5 else rtext(rng, 1, 3)
    if with_text and rng.random() < 0.8:
        t = rtext(rng, 3, 12)
        if answers and rng.random() < 0.4:
            t += " " + rng.choice(list(answers))
        if titles and rng.random() < 0.4:
            t = rng.choice(list(titles)) + " " + t
        p["text"] = t
    return p


def make_pair(rng, n):
    gold, pred = [], []
    for i in range(n):
        pool = [str(rng.randint(1, 12)) for _ in range(6)]
        gid = i if rng.random() < 0.5 else "q%d" % i
        titles = [rtext(rng, 1, 2) for _ in range(2)]
        outputs = []
        answers = []
        for _ in range(rng.randint(1, 3)):
            o = {}
            r = rng.random()
            if r < 0.85:
                a = rtext(rng, 1, 10)
                o["answer"] = a
                answers.append(a)
            elif r < 0.92:
                o["answer"] = rng.choice(["", "   "])
            if rng.random() < 0.85:
                o["provenance"] = [rprov(rng, pool, None, titles=titles) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
            outputs.append(o)
        if not any(a.strip() for a in answers):
            a = rtext(rng, 1, 6)
            outputs.append({"answer": a, "provenance": [rprov(rng, pool, None, titles=titles)]})
            answers.append(a)
        inp = rtext(rng, 3, 10)
        if rng.random() < 0.4:
            inp += " " + rng.choice(titles)
        gold.append({"id": gid, "input": inp, "output": outputs})
        r = rng.random()
        if r < 0.35:
            ans = rng.choice(answers)
        elif r < 0.5:
            ans = rng.choice(answers).upper() + rng.choice(["", ".", " the", "!"])
        elif r < 0.6:
            ans = rng.choice(["", "  ", ".", "the"])
        else:
            ans = rtext(rng, 1, 10)
        prov = [rprov(rng, pool, None, with_text=True, answers=answers, titles=titles) for _ in range(rng.randint(0, 8))]
        pid = gid if rng.random() < 0.9 else " %s " % gid
        pred.append({"id": pid, "input": inp, "output": [{"answer": ans, "provenance": prov}]})
    rng.shuffle(pred)
    return gold, pred


def squad_pair(path, rng, n):
    with open(path) as f:
        data = json.load(f)["data"]
    gold, pred = [], []
    paras = []
    for ai, art in enumerate(data):
        for pi, p in enumerate(art["paragraphs"]):
            paras.append((ai, pi, art["title"], p))
    for ai, pi, title, p in paras:
        for qa in p["qas"]:
            if rng.random() > n / 8000.0:
                continue
            prov = [{"wikipedia_id": str(ai), "title": title, "start_paragraph_id": pi}]
            gold.append({"id": qa["id"], "input": qa["question"],
                         "output": [{"answer": a["text"], "provenance": prov} for a in qa["answers"]]})
            # a prediction: a ranked list with the gold paragraph somewhere (or not) and an answer
            # that is right, partly right, or a sentence of the paragraph
            cands = [(ai, pi, title)] + [paras[rng.randrange(len(paras))][:3] for _ in range(7)]
            rng.shuffle(cands)
            ptext = {(a, b): q["context"] for a, b, _, q in [x for x in paras if x[0] in {c[0] for c in cands}]}
            r = rng.random()
            if r < 0.4:
                ans = qa["answers"][0]["text"]
            elif r < 0.6:
                ans = "the " + qa["answers"][0]["text"].lower() + "."
            else:
                sents = p["context"].split(". ")
                ans = rng.choice(sents)
            pred.append({"id": qa["id"], "input": qa["question"], "output": [{"answer": ans, "provenance": [
                {"wikipedia_id": str(a), "title": t, "start_paragraph_id": b, "score": 1.0 / (k + 1),
                 "text": ptext.get((a, b), "")} for k, (a, b, t) in enumerate(cands)]}]})
    return gold, pred


def write(path, recs):
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kilt", required=True, help="checkout of facebookresearch/KILT")
    ap.add_argument("--rouge", required=True, help="checkout of pltrdy/rouge (the `rouge` package)")
    ap.add_argument("--re2g", default="bin/re2g")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--records", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--squad", default="")
    ap.add_argument("--keep", default="", help="directory to keep the generated files in")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="kilt-crosscheck-")
    os.makedirs(work, exist_ok=True)
    stub = os.path.join(work, "stub")
    try:
        import nltk  # noqa: F401
    except ImportError:
        os.makedirs(os.path.join(stub, "nltk"), exist_ok=True)
        open(os.path.join(stub, "nltk", "__init__.py"), "w").close()
        sys.path.insert(0, stub)
    sys.path.insert(0, args.rouge)
    sys.path.insert(0, args.kilt)
    import io, contextlib
    from kilt import eval_downstream, eval_retrieval

    rng = random.Random(args.seed)
    pairs = []
    for i in range(args.files):
        pairs.append(("random%02d" % i,) + make_pair(rng, args.records))
    if args.squad:
        pairs.append(("squadshifts",) + squad_pair(args.squad, rng, 1500))

    worst = {}
    checked = 0
    for name, gold, pred in pairs:
        gp, pp = os.path.join(work, name + ".gold.jsonl"), os.path.join(work, name + ".pred.jsonl")
        write(gp, gold)
        write(pp, pred)
        for keys in (["wikipedia_id"], ["wikipedia_id", "start_paragraph_id"], ["wikipedia_id", "section"]):
            with contextlib.redirect_stdout(io.StringIO()):
                off = eval_retrieval.evaluate(gp, pp, ks=[1, 3, 5, 10], rank_keys=keys)
                down = eval_downstream.evaluate(gp, pp) if keys == ["wikipedia_id"] else None
            out = subprocess.run([args.re2g, "eval", "kilt", "--gold", gp, "--pred", pp, "--ks", "1,3,5,10",
                                  "--rank-keys", ",".join(keys)], capture_output=True, text=True)
            if out.returncode != 0:
                print(name, keys, "re2g failed:", out.stderr, file=sys.stderr)
                return 1
            ours = json.loads(out.stdout.strip().splitlines()[-1])
            pairs_ = [("retrieval/" + k, v, ours["retrieval"][k]) for k, v in off.items()]
            if down:
                for g in ("downstream", "kilt"):
                    pairs_ += [("%s/%s" % (g, k), v, ours[g][k]) for k, v in down[g].items()]
            for key, theirs, mine in pairs_:
                d = abs(theirs - mine)
                label = key + ("" if keys == ["wikipedia_id"] else " [%s]" % "+".join(keys))
                if label not in worst or d > worst[label][0]:
                    worst[label] = (d, name, theirs, mine)
            checked += 1
    bad = 0
    print("%-72s %10s  %s" % ("metric", "max |diff|", "where (KILT, re2g)"))
    for label in sorted(worst):
        d, name, theirs, mine = worst[label]
        flag = "" if d < 5e-5 else "  <-- differs at 4 decimals"
        bad += d >= 5e-5
        print("%-72s %10.3g  %s (%.6f, %.6f)%s" % (label, d, name, theirs, mine, flag))
    print("%d file pairs x rank-key settings checked, %d metrics differ at 4 decimals" % (checked, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
