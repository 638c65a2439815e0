package dense

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/re2g/re2g/faiss"
)

// BuildOptions configure BuildIndex.
type BuildOptions struct {
	HNSW faiss.HNSWConfig
	// Shards to index (by name); empty means all, in shard order.
	Shards []string
	// SQ8Train is how an SQ8 index's quantiser is trained.
	SQ8Train SQ8Train
	// Progress, if set, is called after each shard with rows added so far.
	Progress func(done, total int)
}

// BuildIndex builds one HNSW index over the chosen shards, with FaissID ids.
// Building the index of every shard separately and searching them together
// (Sharded) lets one changed shard be re-indexed alone; one index over all
// shards searches faster.
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
		if err := s.train(ctx, ix, names, total, o.SQ8Train); err != nil {
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

// DefaultSQ8Sample is how many vectors an SQ8 quantiser trains on by
// default: enough for stable per-dimension ranges, and 300 MB at 768-d.
const DefaultSQ8Sample = 100000

// SQ8Train says how an SQ8 index's quantiser (a range per dimension) is
// trained: on Sample vectors drawn uniformly without replacement, by Seed,
// from the vectors indexed, or on all of them when there are fewer.
type SQ8Train struct {
	// Sample is the most vectors to train on (0: DefaultSQ8Sample).
	Sample int `json:"sample"`
	// Seed chooses the sample: the same store, shards and seed give the
	// same sample.
	Seed uint64 `json:"seed"`
	// Vectors is how many the quantiser was trained on (recorded by
	// builders; BuildIndex ignores it).
	Vectors int `json:"vectors,omitempty"`
}

// Size is how many of n indexed vectors t trains on.
func (t SQ8Train) Size(n int) int {
	if t.Sample == 0 {
		return min(n, DefaultSQ8Sample)
	}
	return min(n, t.Sample)
}

// sampleRows picks k of the rows 0..n-1 uniformly without replacement
// (Floyd's algorithm: k draws, whatever n), in increasing order.
func sampleRows(n, k int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0x5e08))
	chosen := make(map[int]bool, k)
	for j := n - k; j < n; j++ {
		if t := r.IntN(j + 1); !chosen[t] {
			chosen[t] = true
		} else {
			chosen[j] = true
		}
	}
	rows := make([]int, 0, k)
	for i := range chosen {
		rows = append(rows, i)
	}
	slices.Sort(rows)
	return rows
}

// train trains an SQ8 index on the sample t draws from the total rows of
// the named shards (numbered in that order).
func (s *Store) train(ctx context.Context, ix *faiss.Index, names []string, total int, t SQ8Train) error {
	if t.Sample < 0 {
		return fmt.Errorf("dense: build index: SQ8 training sample %d is negative", t.Sample)
	}
	k := t.Size(total)
	rows := sampleRows(total, k, t.Seed)
	d := s.man.Dim
	x := make([]float32, 0, k*d)
	base := 0
	for _, n := range names {
		if len(rows) == 0 {
			break
		}
		si, _, vecs, err := s.ReadShard(ctx, n)
		if err != nil {
			return err
		}
		for len(rows) > 0 && rows[0] < base+si.Count {
			r := rows[0] - base
			x = append(x, vecs[r*d:(r+1)*d]...)
			rows = rows[1:]
		}
		base += si.Count
	}
	if len(x) != k*d {
		return fmt.Errorf("dense: build index: SQ8 training sample: %d of %d rows found in %s", len(x)/d, k, s.dir)
	}
	slog.Info("training the SQ8 quantiser", "vectors", k, "of", total, "seed", t.Seed)
	if err := ix.Train(ctx, x); err != nil {
		return fmt.Errorf("dense: build index: train: %w", err)
	}
	return nil
}

// Sharded searches several indexes (e.g. one per shard) as one: each is
// searched for k hits and the lists are merged by score. The indexes must
// share dimension and metric.
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
		if p.Dim() != parts[0].Dim() || p.Metric() != parts[0].Metric() {
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
