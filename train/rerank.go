package train

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/re2g/re2g/internal/atomicfile"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/torch"
)

// RerankerInput are the reranker phase's inputs: the cross-encoder to start
// from ("" with Init scratch), and the question encoder and index that
// make the pipeline's merged DPR + BM25 candidate lists it trains on.
type RerankerInput struct {
	QueryEncoder, Reranker string
	Index                  string
}

// RerankerOutput is the trained reranker.
type RerankerOutput struct {
	Reranker string
}

// lists are each question's candidate passage ids.
type lists [][]string

// listKey names a cache of candidate lists by everything that made them:
// the index (its manifest), the question encoder's weights, the depths and
// the questions.
func (e *env) listKey(qdir string, denseK, sparseK int, qs []Question) (string, error) {
	h := sha256.New()
	b, _ := json.Marshal(e.ix.Manifest)
	h.Write(b)
	if denseK > 0 {
		k, err := e.weightsKey(qdir)
		if err != nil {
			return "", fmt.Errorf("candidate cache: question encoder: %w", err)
		}
		h.Write([]byte(k))
	}
	fmt.Fprintf(h, "\x00%d\x00%d\x00", denseK, sparseK)
	for _, q := range qs {
		fmt.Fprintf(h, "%s\x00%s\x00", q.ID, q.Text)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// candidateLists returns the merged lists of qs (DPR top denseK by the
// question encoder of qdir, then BM25 top sparseK), from the cache under
// cacheDir when the same inputs made them before. Under data parallelism
// rank 0 makes them (or finds them) and writes the cache, which the other
// ranks then read: the same lists everywhere (with ranks on several
// machines, the output folder must be on a shared file system).
func (e *env) candidateLists(ctx context.Context, q *biEncoder, qdir string, qs []Question, denseK, sparseK int, cacheDir string) (lists, error) {
	if e.g.Size() == 1 {
		c, _, err := e.cachedLists(ctx, q, qdir, qs, denseK, sparseK, cacheDir)
		return c, err
	}
	path, err := onRoot(ctx, e.g, "candidate lists", func() (string, error) {
		_, path, err := e.cachedLists(ctx, q, qdir, qs, denseK, sparseK, cacheDir)
		return path, err
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: rank %d cannot read the candidate lists rank 0 wrote (with ranks on several machines, --out must be on a shared file system): %w", e.g.Rank(), err)
	}
	var c lists
	if err := json.Unmarshal(b, &c); err != nil || len(c) != len(qs) {
		return nil, fmt.Errorf("train: candidate lists %s: %d lists for %d questions (%v)", path, len(c), len(qs), err)
	}
	return c, nil
}

// cachedLists are candidateLists in one process, and the cache file.
func (e *env) cachedLists(ctx context.Context, q *biEncoder, qdir string, qs []Question, denseK, sparseK int, cacheDir string) (lists, string, error) {
	key, err := e.listKey(qdir, denseK, sparseK, qs)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(cacheDir, fmt.Sprintf("lists-%s.json", key))
	if b, err := os.ReadFile(path); err == nil {
		var c lists
		if json.Unmarshal(b, &c) == nil && len(c) == len(qs) {
			slog.Info("candidate lists from cache", "file", path, "questions", len(qs))
			return c, path, nil
		}
		slog.Warn("candidate cache unreadable: rebuilding", "file", path)
	}
	slog.Info("building candidate lists", "questions", len(qs), "dense_k", denseK, "sparse_k", sparseK)
	var c lists
	for lo := 0; lo < len(qs); lo += 512 {
		hi := min(len(qs), lo+512)
		cs, err := e.merged(ctx, q, qs[lo:hi], denseK, sparseK)
		if err != nil {
			return nil, "", err
		}
		for _, l := range cs {
			c = append(c, candIDs(l))
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, "", err
	}
	return c, path, atomicfile.WriteFile(path, b, 0o644)
}

// fill reads the passages of a list from the index.
func (e *env) fill(ids []string) ([]pipeline.Candidate, error) {
	out := make([]pipeline.Candidate, len(ids))
	for i, id := range ids {
		p, err := e.passage(id)
		if err != nil {
			return nil, err
		}
		out[i] = pipeline.Candidate{ID: id, Title: p.Title, Text: p.Text}
	}
	return out, nil
}

func (e *env) reranker(c *crossEncoder) *neural.Reranker {
	return neural.NewReranker(c.m, c.tok, neural.Options{Device: e.dev, MaxLength: e.cfg.PairLen, BatchSize: 64})
}

// rerankLogits scores every candidate of every question in one forward
// pass and returns the flat logits [ΣN] (float32) in s.
func (e *env) rerankLogits(ctx context.Context, s *torch.Scope, c *crossEncoder, qs []Question, ls [][]pipeline.Candidate, train bool) (*torch.Tensor, error) {
	f := neural.DefaultSourceFormat()
	var pairs []neural.Pair
	for i, q := range qs {
		for _, p := range ls[i] {
			pairs = append(pairs, neural.Pair{Query: q.Text, Passage: f.Passage(p.Title, p.Text)})
		}
	}
	in, err := e.reranker(c).Tokenize(ctx, s, pairs)
	if err != nil {
		return nil, err
	}
	return toFloat32(s, c.m.Scores(s, in, train)), s.Err()
}

// rerankOrder sorts each list by the reranker, best first (stable).
func (e *env) rerankOrder(ctx context.Context, c *crossEncoder, qs []Question, ls [][]pipeline.Candidate) ([][]pipeline.Candidate, [][]float64, error) {
	out := make([][]pipeline.Candidate, len(qs))
	scores := make([][]float64, len(qs))
	for lo := 0; lo < len(qs); lo += 16 {
		hi := min(len(qs), lo+16)
		s := e.evalScope()
		z, err := e.rerankLogits(ctx, s, c, qs[lo:hi], ls[lo:hi], false)
		var v []float64
		if err == nil {
			v, err = z.Float64s()
		}
		s.Close()
		if err != nil {
			return nil, nil, err
		}
		at := 0
		for i := lo; i < hi; i++ {
			n := len(ls[i])
			idx := make([]int, n)
			for k := range idx {
				idx[k] = k
			}
			zz := v[at : at+n]
			sort.SliceStable(idx, func(a, b int) bool { return zz[idx[a]] > zz[idx[b]] })
			for _, k := range idx {
				out[i] = append(out[i], ls[i][k])
				scores[i] = append(scores[i], zz[k])
			}
			at += n
		}
	}
	return out, scores, nil
}

// filled reads the passages of every list.
func (e *env) filled(ls lists) ([][]pipeline.Candidate, error) {
	out := make([][]pipeline.Candidate, len(ls))
	for i, l := range ls {
		var err error
		if out[i], err = e.fill(l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// evalReranker compares the merged order with the reranked one.
func (e *env) evalReranker(ctx context.Context, c *crossEncoder, qs []Question, ls [][]pipeline.Candidate) (map[string]float64, error) {
	ranked, _, err := e.rerankOrder(ctx, c, qs, ls)
	if err != nil {
		return nil, err
	}
	ids := func(x [][]pipeline.Candidate) [][]string {
		out := make([][]string, len(x))
		for i, l := range x {
			out[i] = candIDs(l)
		}
		return out
	}
	m := retrievalMetrics(qs, ids(ranked), 1, 5)
	for k, v := range retrievalMetrics(qs, ids(ls), 1, 5) {
		m["merged_"+k] = v
	}
	return m, nil
}

// rerankLoss is the mean over the n questions with a gold candidate of
// −Σ_{i∈Prov} log softmax(z)_i; nil when no question has one.
func rerankLoss(s *torch.Scope, z *torch.Tensor, qs []Question, ls [][]pipeline.Candidate) (*torch.Tensor, int) {
	var total *torch.Tensor
	n := 0
	at := int64(0)
	for i, q := range qs {
		l := int64(len(ls[i]))
		var gold []int64
		for k, c := range ls[i] {
			if q.isGold(c.ID) {
				gold = append(gold, int64(k))
			}
		}
		if loss := RerankLoss(s, s.Slice(z, 0, at, at+l, 1), gold); loss != nil {
			if total == nil {
				total = loss
			} else {
				total = s.Add(total, loss)
			}
			n++
		}
		at += l
	}
	if total == nil {
		return nil, 0
	}
	return s.DivScalar(total, float64(n)), n
}

// withGold keeps the questions whose list holds a gold passage (the
// others give the loss nothing) and counts the rest.
func withGold(qs []Question, ls lists) ([]Question, lists, int) {
	var oq []Question
	var ol lists
	for i, q := range qs {
		for _, id := range ls[i] {
			if q.isGold(id) {
				oq, ol = append(oq, q), append(ol, ls[i])
				break
			}
		}
	}
	return oq, ol, len(qs) - len(oq)
}

// TrainReranker is phase 3: the cross-encoder on the pipeline's merged DPR
// top-k + BM25 top-k lists of the training questions (built once, cached
// under out/candidates, keyed by index, question encoder, depths and
// questions), with −Σ_{i∈Prov} log softmax(z)_i per list.
func TrainReranker(ctx context.Context, cfg *Config, ds *Dataset, in RerankerInput, out string, ro RunOptions) (RerankerOutput, PhaseReport, error) {
	e, err := newEnv(cfg, ds, in.Index)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	defer e.close()
	e.g = ro.Group
	logData("reranker", e)
	rc := cfg.Reranker
	var q *biEncoder
	if rc.DenseK > 0 {
		if in.QueryEncoder == "" {
			return RerankerOutput{}, PhaseReport{}, fmt.Errorf("train reranker: the lists need DPR hits (dense_k %d): give --query-encoder DIR, or set reranker.dense_k 0", rc.DenseK)
		}
		if q, err = e.loadBiEncoder(in.QueryEncoder, true, nil); err != nil {
			return RerankerOutput{}, PhaseReport{}, err
		}
		defer q.Close()
	}
	cache := filepath.Join(out, "candidates")
	trL, err := e.candidateLists(ctx, q, in.QueryEncoder, e.trainQ, rc.DenseK, rc.SparseK, cache)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	dvL, err := e.candidateLists(ctx, q, in.QueryEncoder, e.devQ, rc.DenseK, rc.SparseK, cache)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	trainQ, trL, dropped := withGold(e.trainQ, trL)
	if len(trainQ) == 0 {
		return RerankerOutput{}, PhaseReport{}, fmt.Errorf("train reranker: no training list holds a gold passage (depths %d+%d)", rc.DenseK, rc.SparseK)
	}
	slog.Info("reranker lists", "train", len(trainQ), "without_gold", dropped, "dev", len(dvL))
	dev, err := e.filled(dvL)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	torch.ManualSeed(cfg.Seed + 3) // initialisation of a reranker made from scratch
	c, err := e.loadReranker(in.Reranker)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	defer c.Close()
	t, err := e.rerankTask(c, trainQ, trL, dev)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	r, err := Run(ctx, t, rc.Opt, cfg.Seed+3, out, ro)
	if err != nil {
		return RerankerOutput{}, PhaseReport{}, err
	}
	rep := report("reranker", out, r)
	rep.Metrics["lists_without_gold"] = float64(dropped)
	return RerankerOutput{Reranker: filepath.Join(out, "model", "reranker")}, rep, nil
}

func (e *env) rerankTask(c *crossEncoder, trainQ []Question, trL lists, dev [][]pipeline.Candidate) (*Task, error) {
	cp, err := c.m.Parameters()
	if err != nil {
		return nil, err
	}
	t := &Task{
		Name: "reranker", N: len(trainQ), Metric: "r_precision", Params: map[string][]torch.Param{}, NewScope: e.scope,
		Loss: func(ctx context.Context, s *torch.Scope, b Batch) (*torch.Tensor, int, error) {
			qs := make([]Question, len(b.Idx))
			ls := make([][]pipeline.Candidate, len(b.Idx))
			for i, j := range b.Idx {
				qs[i] = trainQ[j]
				var err error
				if ls[i], err = e.fill(trL[j]); err != nil {
					return nil, 0, err
				}
			}
			z, err := e.rerankLogits(ctx, s, c, qs, ls, true)
			if err != nil {
				return nil, 0, err
			}
			loss, n := rerankLoss(s, z, qs, ls)
			return loss, n, s.Err()
		},
		Eval: func(ctx context.Context) (map[string]float64, error) { return e.evalReranker(ctx, c, e.devQ, dev) },
		Save: func(dir string) error { return e.saveCross(filepath.Join(dir, "reranker"), c) },
	}
	e.trainable(t, "reranker", cp)
	return t, nil
}
