package dense

import (
	"context"
	"fmt"
	"slices"

	"github.com/re2g/re2g/faiss"
)

// BuildOptions configure BuildIndex.
type BuildOptions struct {
	HNSW faiss.HNSWConfig
	// Shards to index (by name); empty means all, in shard order.
	Shards []string
	// TrainSample bounds the vectors an SQ8 index trains on (default 100k).
	TrainSample int
	// Progress, if set, is called after each shard with rows added so far.
	Progress func(done, total int)
}

// BuildIndex builds one HNSW index over the chosen shards, with FaissID ids.
// Building the index of every shard separately and searching them together
// (Sharded) lets one changed shard be re-indexed alone; one index over all
// shards searches faster. For InnerProductAsL2, phi is the maximum over the
// chosen shards (from the manifest, so it is known before any add).
func (s *Store) BuildIndex(ctx context.Context, o BuildOptions) (*faiss.Index, error) {
	names := o.Shards
	if len(names) == 0 {
		for _, si := range s.man.Shards {
			names = append(names, si.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("dense: build index: store %s has no shards", s.dir)
	}
	total := 0
	cfg := o.HNSW
	for _, n := range names {
		i, ok := s.shard(n)
		if !ok {
			return nil, fmt.Errorf("dense: build index: no shard %q in %s", n, s.dir)
		}
		total += s.man.Shards[i].Count
		if cfg.Metric == faiss.InnerProductAsL2 && o.HNSW.Phi == 0 {
			cfg.Phi = max(cfg.Phi, s.man.Shards[i].MaxSqNorm)
		}
	}
	ix, err := faiss.NewHNSW(s.man.Dim, cfg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			ix.Close()
		}
	}()
	if cfg.SQ8 {
		if err := s.train(ctx, ix, names, o.TrainSample); err != nil {
			return nil, err
		}
	}
	done := 0
	for _, n := range names {
		si, _, vecs, err := s.ReadShard(ctx, n)
		if err != nil {
			return nil, err
		}
		ids := make([]int64, si.Count)
		for r := range ids {
			ids[r] = FaissID(si.No, r)
		}
		if err := ix.Add(ctx, vecs, ids); err != nil {
			return nil, fmt.Errorf("dense: build index: shard %s: %w", n, err)
		}
		done += si.Count
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	ok = true
	return ix, nil
}

// train trains an SQ8 index on up to sample vectors taken evenly from the
// shards.
func (s *Store) train(ctx context.Context, ix *faiss.Index, names []string, sample int) error {
	if sample <= 0 {
		sample = 100000
	}
	per := max(1, sample/len(names))
	var x []float32
	d := s.man.Dim
	for _, n := range names {
		si, _, vecs, err := s.ReadShard(ctx, n)
		if err != nil {
			return err
		}
		step := max(1, si.Count/per)
		for r := 0; r < si.Count; r += step {
			x = append(x, vecs[r*d:(r+1)*d]...)
		}
	}
	if err := ix.Train(ctx, x); err != nil {
		return fmt.Errorf("dense: build index: train: %w", err)
	}
	return nil
}

// Sharded searches several indexes (e.g. one per shard) as one: each is
// searched for k hits and the lists are merged by score. The indexes must
// share dimension and ranking (inner-product scores are comparable across
// InnerProduct and InnerProductAsL2 indexes, whatever their phi).
type Sharded struct {
	parts []*faiss.Index
	lower bool // smaller score is better (L2)
}

// NewSharded groups indexes; it does not take ownership of them.
func NewSharded(parts ...*faiss.Index) (*Sharded, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("dense: sharded search needs at least one index")
	}
	lower := parts[0].Metric() == faiss.L2
	for _, p := range parts[1:] {
		if p.Dim() != parts[0].Dim() || (p.Metric() == faiss.L2) != lower {
			return nil, fmt.Errorf("dense: sharded search: %s does not match %s", p.Description(), parts[0].Description())
		}
	}
	return &Sharded{parts: parts, lower: lower}, nil
}

// Search searches every part and merges the top k of each query.
func (m *Sharded) Search(ctx context.Context, x []float32, k int, opt *faiss.SearchOptions) (*faiss.Result, error) {
	results := make([]*faiss.Result, len(m.parts))
	for i, p := range m.parts {
		r, err := p.Search(ctx, x, k, opt)
		if err != nil {
			return nil, fmt.Errorf("dense: sharded search, part %d: %w", i, err)
		}
		results[i] = r
	}
	n := results[0].N
	out := &faiss.Result{N: n, K: k, IDs: make([]int64, n*k), Scores: make([]float32, n*k)}
	type hit struct {
		id    int64
		score float32
	}
	hits := make([]hit, 0, k*len(results))
	for q := 0; q < n; q++ {
		hits = hits[:0]
		for _, r := range results {
			ids, sc := r.Row(q)
			for j, id := range ids {
				if id >= 0 {
					hits = append(hits, hit{id, sc[j]})
				}
			}
		}
		slices.SortStableFunc(hits, func(a, b hit) int {
			if a.score == b.score {
				return 0
			}
			if (a.score > b.score) != m.lower {
				return -1
			}
			return 1
		})
		for j := 0; j < k; j++ {
			if j < len(hits) {
				out.IDs[q*k+j], out.Scores[q*k+j] = hits[j].id, hits[j].score
			} else {
				out.IDs[q*k+j], out.Scores[q*k+j] = -1, 0
			}
		}
	}
	return out, nil
}
