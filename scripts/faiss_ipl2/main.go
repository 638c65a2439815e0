// Command faiss_ipl2 looks into the inner-product-as-L2 transformation
// (Bachrach et al. 2014: x -> [x, sqrt(phi-|x|²)], q -> [q, 0]) against
// plain inner-product HNSW, on a vector set: synthetic clustered vectors
// (internal/vecgen, as scripts/bench_faiss makes them, with a chosen norm
// spread) or a re2g vector store with query vectors from `re2g encode`.
//
// For each set it separates the transformation from the graph:
//
//   - exact: brute force over the augmented vectors (an L2 flat index over
//     vectors augmented here, independently of package faiss) against
//     brute-force inner product: the transformation alone (recall 1 and
//     equal scores when it is right);
//   - ip: HNSW with inner product (FAISS builds the graph with inner
//     product as its similarity);
//   - aug-l2: an L2 HNSW over the augmented vectors, the inner-product-as-L2
//     index DPR's indexer builds (package faiss had it as a metric,
//     ip-as-l2, until commit 234fea7, where this command also ran it and
//     the two agreed);
//   - l2: L2 HNSW over the raw vectors against exact L2, how hard the set
//     is for an L2 graph at all.
//
// It also prints the set's shape: squared norms (min, mean, max = phi),
// the share of phi the extra coordinate holds on average, the mean of
// |x·y| and of e_x·e_y over random pairs (the two parts of the augmented
// vectors' inner product, by which the L2 graph links them), and how
// concentrated the exact top 10 are on a few large-norm vectors.
//
//	go run ./scripts/faiss_ipl2 -spread 0,0.05,0.2 -n 20000
//	go run ./scripts/faiss_ipl2 -store IDX/dense -queries q.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/re2g/re2g/dense"
	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/vecgen"
)

type config struct {
	n, d, nq, k    int
	m, efc         int
	efs            []int
	spreads        []float64
	noise          float64
	clusters       int
	unit           bool
	store, queries string
	threads        int
}

func main() {
	var c config
	var efs, spreads string
	flag.IntVar(&c.n, "n", 20000, "synthetic corpus size")
	flag.IntVar(&c.d, "d", 768, "synthetic dimension")
	flag.IntVar(&c.nq, "nq", 500, "queries (synthetic; at most this many from -queries)")
	flag.IntVar(&c.k, "k", 10, "k of recall@k")
	flag.IntVar(&c.m, "M", faiss.DefaultM, "HNSW M")
	flag.IntVar(&c.efc, "efc", faiss.DefaultEfConstruction, "HNSW efConstruction")
	flag.StringVar(&efs, "ef", "16,32,64,128,256", "efSearch values")
	flag.StringVar(&spreads, "spread", "0.2", "synthetic norm spreads (vecgen NormSpread), comma-separated")
	flag.Float64Var(&c.noise, "noise", 1.5, "synthetic noise (vecgen Noise; bench_faiss uses 1.5)")
	flag.IntVar(&c.clusters, "clusters", 32, "synthetic clusters")
	flag.BoolVar(&c.unit, "unit", false, "also run the synthetic sets scaled to unit norm")
	flag.StringVar(&c.store, "store", "", "a re2g vector store directory (instead of synthetic vectors)")
	flag.StringVar(&c.queries, "queries", "", "with -store: query vectors, JSON lines {\"vector\": [...]} (re2g encode's output)")
	flag.IntVar(&c.threads, "threads", 0, "OpenMP threads (0: all cores)")
	flag.Parse()
	var err error
	if c.efs, err = parseList(efs, strconv.Atoi); err != nil {
		fail(err)
	}
	if c.spreads, err = parseList(spreads, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		fail(err)
	}
	if err := faiss.SetThreads(c.threads); err != nil {
		fail(err)
	}
	ctx := context.Background()
	type set struct {
		name   string
		xb, xq []float32
		d      int
	}
	var sets []set
	if c.store != "" {
		xb, xq, d, err := loadStore(ctx, c)
		if err != nil {
			fail(err)
		}
		sets = append(sets, set{"store " + c.store, xb, xq, d})
	} else {
		for _, sp := range c.spreads {
			g := vecgen.New(vecgen.Spec{Dim: c.d, Clusters: c.clusters, Noise: c.noise, NormSpread: sp, Seed: 1})
			xb, xq := g.Vectors(1, c.n), g.Vectors(2, c.nq)
			name := fmt.Sprintf("vecgen d=%d n=%d clusters=%d noise=%g spread=%g", c.d, c.n, c.clusters, c.noise, sp)
			sets = append(sets, set{name, xb, xq, c.d})
			if c.unit {
				sets = append(sets, set{name + " unit-norm", unitRows(xb, c.d), unitRows(xq, c.d), c.d})
			}
		}
	}
	fmt.Printf("HNSW M=%d efConstruction=%d, recall@%d against exact inner product (l2: against exact L2), threads %d\n\n", c.m, c.efc, c.k, faiss.Threads())
	for _, s := range sets {
		if err := runSet(ctx, c, s.name, s.xb, s.xq, s.d); err != nil {
			fail(fmt.Errorf("%s: %w", s.name, err))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "faiss_ipl2:", err)
	os.Exit(1)
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("bad list %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func unitRows(x []float32, d int) []float32 {
	out := slices.Clone(x)
	for i := 0; i+d <= len(out); i += d {
		n := float32(math.Sqrt(float64(sqNorm(out[i : i+d]))))
		for j := i; j < i+d; j++ {
			out[j] /= n
		}
	}
	return out
}

// loadStore reads every vector of a store and up to nq query vectors.
func loadStore(ctx context.Context, c config) (xb, xq []float32, d int, err error) {
	st, err := dense.Open(c.store)
	if err != nil {
		return nil, nil, 0, err
	}
	d = st.Dim()
	for _, si := range st.Shards() {
		_, _, v, err := st.ReadShard(ctx, si.Name)
		if err != nil {
			return nil, nil, 0, err
		}
		xb = append(xb, v...)
	}
	if c.queries == "" {
		return nil, nil, 0, fmt.Errorf("-store needs -queries")
	}
	f, err := os.Open(c.queries)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<26)
	for line := 1; sc.Scan() && len(xq) < c.nq*d; line++ {
		var r struct {
			Vector []float32 `json:"vector"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, nil, 0, fmt.Errorf("%s line %d: %w", c.queries, line, err)
		}
		if len(r.Vector) != d {
			return nil, nil, 0, fmt.Errorf("%s line %d: %d floats, the store's dimension is %d", c.queries, line, len(r.Vector), d)
		}
		xq = append(xq, r.Vector...)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", c.queries, err)
	}
	if len(xq) == 0 {
		return nil, nil, 0, fmt.Errorf("%s: no query vectors", c.queries)
	}
	return xb, xq, d, nil
}

// maxSqNorm is the largest squared norm of the rows of x: phi.
func maxSqNorm(x []float32, d int) float32 {
	var m float32
	for i := 0; i+d <= len(x); i += d {
		m = max(m, sqNorm(x[i:i+d]))
	}
	return m
}

func sqNorm(v []float32) float32 {
	var s float32
	for _, f := range v {
		s += f * f
	}
	return s
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// augment is the transformation, written here apart from package faiss.
func augment(xb []float32, d int, phi float32) []float32 {
	n := len(xb) / d
	out := make([]float32, 0, n*(d+1))
	for i := 0; i < n; i++ {
		v := xb[i*d : (i+1)*d]
		out = append(out, v...)
		out = append(out, float32(math.Sqrt(math.Max(0, float64(phi-sqNorm(v))))))
	}
	return out
}

func augmentQueries(xq []float32, d int) []float32 {
	n := len(xq) / d
	out := make([]float32, 0, n*(d+1))
	for i := 0; i < n; i++ {
		out = append(append(out, xq[i*d:(i+1)*d]...), 0)
	}
	return out
}

func recall(got, exact *faiss.Result) float64 {
	hit := 0
	for i := 0; i < exact.N; i++ {
		w, _ := exact.Row(i)
		g, _ := got.Row(i)
		for _, id := range g {
			if slices.Contains(w, id) {
				hit++
			}
		}
	}
	return float64(hit) / float64(exact.N*exact.K)
}

func search(ctx context.Context, ix *faiss.Index, xq []float32, k, ef int) (*faiss.Result, error) {
	return ix.Search(ctx, xq, k, &faiss.SearchOptions{EfSearch: ef})
}

func flat(ctx context.Context, d int, m faiss.Metric, xb []float32, ids []int64) (*faiss.Index, error) {
	ix, err := faiss.NewFlat(d, m)
	if err != nil {
		return nil, err
	}
	if err := ix.Add(ctx, xb, ids); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

func hnsw(ctx context.Context, c config, d int, m faiss.Metric, xb []float32, ids []int64) (*faiss.Index, float64, error) {
	start := time.Now()
	ix, err := faiss.NewHNSW(d, faiss.HNSWConfig{M: c.m, EfConstruction: c.efc, Metric: m})
	if err != nil {
		return nil, 0, err
	}
	if err := ix.Add(ctx, xb, ids); err != nil {
		ix.Close()
		return nil, 0, err
	}
	return ix, time.Since(start).Seconds(), nil
}

func runSet(ctx context.Context, c config, name string, xb, xq []float32, d int) error {
	n, nq := len(xb)/d, len(xq)/d
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	phi := maxSqNorm(xb, d)
	fmt.Printf("## %s (n=%d, d=%d, %d queries)\n\n", name, n, d, nq)
	shape(xb, d, phi)

	// the truth, and the transformation alone
	exactIP, err := flat(ctx, d, faiss.InnerProduct, xb, ids)
	if err != nil {
		return err
	}
	defer exactIP.Close()
	gt, err := exactIP.Search(ctx, xq, c.k, nil)
	if err != nil {
		return err
	}
	aug := augment(xb, d, phi)
	exactAug, err := flat(ctx, d+1, faiss.L2, aug, ids)
	if err != nil {
		return err
	}
	defer exactAug.Close()
	ga, err := exactAug.Search(ctx, augmentQueries(xq, d), c.k, nil)
	if err != nil {
		return err
	}
	maxErr := 0.0
	for i := 0; i < nq; i++ {
		q := xq[i*d : (i+1)*d]
		aid, asc := ga.Row(i)
		for j, id := range aid {
			// |q'-x'|² = |q|² + phi - 2q·x
			ip := (float64(sqNorm(q)) + float64(phi) - float64(asc[j])) / 2
			want := dot(q, xb[int(id)*d:(int(id)+1)*d])
			maxErr = max(maxErr, math.Abs(ip-want)/math.Max(1, math.Abs(want)))
		}
	}
	fmt.Printf("exact search over the augmented vectors: recall@%d %.4f against exact inner product, largest relative error of q·x recovered from the L2 distance %.1e\n",
		c.k, recall(ga, gt), maxErr)
	hub := concentration(gt, xb, d)
	fmt.Printf("exact top %d: %d distinct vectors over %d queries (%.1f%% of the slots); their squared norms average the %.0fth percentile of the corpus\n\n",
		c.k, hub.distinct, nq, 100*float64(hub.distinct)/float64(nq*c.k), hub.pct)

	exactL2, err := flat(ctx, d, faiss.L2, xb, ids)
	if err != nil {
		return err
	}
	defer exactL2.Close()
	gtL2, err := exactL2.Search(ctx, xq, c.k, nil)
	if err != nil {
		return err
	}

	type variant struct {
		name  string
		ix    *faiss.Index
		q     []float32
		truth *faiss.Result
		build float64
	}
	var vs []variant
	for _, v := range []struct {
		name  string
		d     int
		m     faiss.Metric
		xb    []float32
		q     []float32
		truth *faiss.Result
	}{
		{"ip", d, faiss.InnerProduct, xb, xq, gt},
		{"aug-l2", d + 1, faiss.L2, aug, augmentQueries(xq, d), gt},
		{"l2", d, faiss.L2, xb, xq, gtL2},
	} {
		slog.Info("building", "set", name, "variant", v.name)
		ix, secs, err := hnsw(ctx, c, v.d, v.m, v.xb, ids)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		defer ix.Close()
		vs = append(vs, variant{v.name, ix, v.q, v.truth, secs})
	}
	fmt.Printf("| efSearch | ip | aug-l2 (ip as L2) | l2 (vs exact L2) |\n|---:|---:|---:|---:|\n")
	for _, ef := range c.efs {
		var rs []float64
		for _, v := range vs {
			r, err := search(ctx, v.ix, v.q, c.k, ef)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rs = append(rs, recall(r, v.truth))
		}
		fmt.Printf("| %d | %.4f | %.4f | %.4f |\n", ef, rs[0], rs[1], rs[2])
	}
	fmt.Printf("\nbuild seconds: ")
	for i, v := range vs {
		if i > 0 {
			fmt.Print(", ")
		}
		fmt.Printf("%s %.1f", v.name, v.build)
	}
	fmt.Print("\n\n")
	return nil
}

// shape prints the norms and the two parts of the augmented inner product.
func shape(xb []float32, d int, phi float32) {
	n := len(xb) / d
	norms := make([]float64, n)
	var sum, extra float64
	for i := range norms {
		norms[i] = float64(sqNorm(xb[i*d : (i+1)*d]))
		sum += norms[i]
		extra += float64(phi) - norms[i]
	}
	r := rand.New(rand.NewPCG(1, 2))
	var xy, ee float64
	const pairs = 20000
	for range pairs {
		i, j := r.IntN(n), r.IntN(n)
		xy += math.Abs(dot(xb[i*d:(i+1)*d], xb[j*d:(j+1)*d]))
		ee += math.Sqrt(math.Max(0, float64(phi)-norms[i])) * math.Sqrt(math.Max(0, float64(phi)-norms[j]))
	}
	fmt.Printf("squared norms: min %.4g, mean %.4g, max (phi) %.4g; the extra coordinate holds %.0f%% of phi on average\n",
		slices.Min(norms), sum/float64(n), phi, 100*extra/float64(n)/float64(phi))
	fmt.Printf("random pairs: mean |x·y| %.4g, mean e_x·e_y %.4g (the augmented inner product is their sum)\n", xy/pairs, ee/pairs)
}

type hubs struct {
	distinct int
	pct      float64
}

// concentration counts the distinct vectors of the exact top k and where
// their squared norms fall in the corpus's distribution.
func concentration(gt *faiss.Result, xb []float32, d int) hubs {
	n := len(xb) / d
	norms := make([]float32, n)
	for i := range norms {
		norms[i] = sqNorm(xb[i*d : (i+1)*d])
	}
	sorted := slices.Clone(norms)
	slices.Sort(sorted)
	seen := map[int64]bool{}
	var pct float64
	cnt := 0
	for _, id := range gt.IDs {
		if id < 0 {
			continue
		}
		seen[id] = true
		r, _ := slices.BinarySearch(sorted, norms[id])
		pct += 100 * float64(r) / float64(n)
		cnt++
	}
	return hubs{distinct: len(seen), pct: pct / float64(cnt)}
}
