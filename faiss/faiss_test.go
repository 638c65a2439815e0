package faiss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/re2g/re2g/internal/limits"
	"github.com/re2g/re2g/internal/vecgen"
)

const (
	testDim = 48
	testN   = 3000
	testQ   = 100
	testK   = 10
)

func testData(t *testing.T) (xb, xq []float32, ids []int64) {
	t.Helper()
	g := vecgen.New(vecgen.Spec{Dim: testDim, Clusters: 32, Noise: 0.8, NormSpread: 0.3, Seed: 7})
	xb = g.Vectors(1, testN)
	xq = g.Vectors(2, testQ)
	ids = make([]int64, testN)
	for i := range ids {
		ids[i] = int64(1_000_000 + 3*i) // non-sequential ids
	}
	return xb, xq, ids
}

func groundTruth(t *testing.T, m Metric, xb, xq []float32, ids []int64) *Result {
	t.Helper()
	flat, err := NewFlat(testDim, m)
	if err != nil {
		t.Fatal(err)
	}
	defer flat.Close()
	ctx := context.Background()
	if err := flat.Add(ctx, xb, ids); err != nil {
		t.Fatal(err)
	}
	gt, err := flat.Search(ctx, xq, testK, nil)
	if err != nil {
		t.Fatal(err)
	}
	return gt
}

// recall is recall@k of got against the exact result.
func recall(got, exact *Result) float64 {
	hit := 0
	for i := 0; i < exact.N; i++ {
		want := map[int64]bool{}
		ei, _ := exact.Row(i)
		for _, id := range ei {
			want[id] = true
		}
		gi, _ := got.Row(i)
		for _, id := range gi {
			if want[id] {
				hit++
			}
		}
	}
	return float64(hit) / float64(exact.N*exact.K)
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestHNSWRecallAgainstFlat(t *testing.T) {
	xb, xq, ids := testData(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		cfg       HNSWConfig
		exact     Metric
		minRecall float64
	}{
		{"flat-ip", HNSWConfig{Metric: InnerProduct}, InnerProduct, 0.95},
		{"flat-l2", HNSWConfig{Metric: L2}, L2, 0.95},
		{"sq8-ip", HNSWConfig{Metric: InnerProduct, SQ8: true}, InnerProduct, 0.85},
		{"sq8-l2", HNSWConfig{Metric: L2, SQ8: true}, L2, 0.85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gt := groundTruth(t, tc.exact, xb, xq, ids)
			tc.cfg.M, tc.cfg.EfConstruction = 16, 64
			ix, err := NewHNSW(testDim, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			if tc.cfg.SQ8 {
				if err := ix.Add(ctx, xb, ids); !errors.Is(err, ErrNotTrained) {
					t.Fatalf("add before train: got %v, want ErrNotTrained", err)
				}
				if err := ix.Train(ctx, xb); err != nil {
					t.Fatal(err)
				}
			}
			if err := ix.Add(ctx, xb, ids); err != nil {
				t.Fatal(err)
			}
			if got := ix.Ntotal(); got != testN {
				t.Fatalf("ntotal %d, want %d", got, testN)
			}
			low, err := ix.Search(ctx, xq, testK, &SearchOptions{EfSearch: 10})
			if err != nil {
				t.Fatal(err)
			}
			high, err := ix.Search(ctx, xq, testK, &SearchOptions{EfSearch: 256})
			if err != nil {
				t.Fatal(err)
			}
			rl, rh := recall(low, gt), recall(high, gt)
			t.Logf("%s: recall@10 ef=10 %.3f, ef=256 %.3f", ix.Description(), rl, rh)
			if rh < tc.minRecall {
				t.Errorf("recall@10 at efSearch=256 is %.3f, want >= %.2f", rh, tc.minRecall)
			}
			if rl >= rh {
				t.Errorf("efSearch had no effect: recall %.3f at 10 vs %.3f at 256", rl, rh)
			}
			// Scores are inner products (or L2 distances), consistent with ids.
			if tc.cfg.SQ8 {
				return
			}
			byID := map[int64][]float32{}
			for i, id := range ids {
				byID[id] = xb[i*testDim : (i+1)*testDim]
			}
			for i := 0; i < 5; i++ {
				q := xq[i*testDim : (i+1)*testDim]
				rid, rs := high.Row(i)
				for j, id := range rid {
					v, ok := byID[id]
					if !ok {
						t.Fatalf("unknown id %d", id)
					}
					want := dot(q, v)
					if tc.cfg.Metric == L2 {
						want = sqNorm(q) + sqNorm(v) - 2*dot(q, v)
					}
					if math.Abs(float64(rs[j]-want)) > 1e-3*math.Max(1, math.Abs(float64(want))) {
						t.Fatalf("query %d hit %d id %d: score %g, want %g", i, j, id, rs[j], want)
					}
				}
			}
		})
	}
}

func sqNorm(v []float32) float32 { return dot(v, v) }

// TestRemovedIPAsL2: the metric that was removed is an error that says so,
// by name (--metric), by number (a configuration from an old manifest) and
// in the sidecar of an index saved with it.
func TestRemovedIPAsL2(t *testing.T) {
	if _, err := ParseMetric("ip-as-l2"); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("ParseMetric(ip-as-l2): %v", err)
	}
	if _, err := NewHNSW(testDim, HNSWConfig{Metric: 2}); err == nil || !strings.Contains(err.Error(), "removed") {
		t.Errorf("NewHNSW with metric 2: %v", err)
	}
	// an ip-as-l2 index as the package saved it: an L2 HNSW of dimension
	// d+1, its sidecar naming the metric
	xb, _, ids := testData(t)
	aug := make([]float32, 0, testN*(testDim+1))
	for i := 0; i < testN; i++ {
		aug = append(append(aug, xb[i*testDim:(i+1)*testDim]...), 0)
	}
	ix, err := NewHNSW(testDim+1, HNSWConfig{M: 8, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Add(context.Background(), aug, ids); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.faiss")
	if err := ix.Save(path); err != nil {
		t.Fatal(err)
	}
	side := fmt.Sprintf(`{"format":"re2g-faiss/1","dim":%d,"metric":"ip-as-l2","phi":5.3,"ntotal":%d,"kind":"IDMap(HNSWFlat)"}`, testDim, testN)
	if err := os.WriteFile(MetaPath(path), []byte(side), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), MetaPath(path)) || !strings.Contains(err.Error(), "removed") {
		t.Errorf("load of an ip-as-l2 index: %v", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	xb, xq, ids := testData(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, cfg := range []HNSWConfig{
		{M: 16, Metric: InnerProduct, EfSearch: 40},
		{M: 16, Metric: L2, SQ8: true, EfSearch: 40},
	} {
		ix, err := NewHNSW(testDim, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ix.Train(ctx, xb); err != nil {
			t.Fatal(err)
		}
		if err := ix.Add(ctx, xb, ids); err != nil {
			t.Fatal(err)
		}
		before, err := ix.Search(ctx, xq, testK, nil)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, cfg.Metric.String()+".faiss")
		if err := ix.Save(path); err != nil {
			t.Fatal(err)
		}
		ix.Close()
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if filepath.Ext(e.Name()) != ".faiss" && filepath.Ext(e.Name()) != ".json" {
				t.Errorf("temporary file left behind: %s", e.Name())
			}
		}
		back, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if back.Dim() != testDim || back.Metric() != cfg.Metric || back.Ntotal() != testN {
			t.Fatalf("loaded %s, ntotal %d", back.Description(), back.Ntotal())
		}
		p, ok, err := back.HNSWParams()
		if err != nil || !ok || p.M != 16 || p.EfSearch != 40 || p.SQ8 != cfg.SQ8 {
			t.Fatalf("loaded HNSW params %+v ok=%v err=%v", p, ok, err)
		}
		after, err := back.Search(ctx, xq, testK, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range before.IDs {
			if before.IDs[i] != after.IDs[i] || before.Scores[i] != after.Scores[i] {
				t.Fatalf("%s: result %d differs after load: %d/%g vs %d/%g", cfg.Metric, i,
					before.IDs[i], before.Scores[i], after.IDs[i], after.Scores[i])
			}
		}
		back.Close()
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ix, err := NewHNSW(testDim, HNSWConfig{M: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	q := make([]float32, testDim)
	if _, err := ix.Search(ctx, q, 5, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("search before add: got %v, want ErrEmpty", err)
	}
	if err := ix.Add(ctx, make([]float32, testDim+1), []int64{1}); !errors.Is(err, ErrDimension) {
		t.Errorf("add of a %d-dim vector: got %v, want ErrDimension", testDim+1, err)
	}
	if err := ix.Add(ctx, make([]float32, 2*testDim), []int64{1}); !errors.Is(err, ErrDimension) {
		t.Errorf("add with too few ids: got %v, want ErrDimension", err)
	}
	if err := ix.Add(ctx, q, []int64{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Search(ctx, make([]float32, testDim-1), 5, nil); !errors.Is(err, ErrDimension) {
		t.Errorf("search with a %d-dim query: got %v, want ErrDimension", testDim-1, err)
	}
	if _, err := ix.Search(ctx, q, 0, nil); err == nil {
		t.Error("search with k=0: no error")
	}
	res, err := ix.Search(ctx, q, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.IDs[0] != 1 || res.IDs[1] != -1 {
		t.Errorf("k beyond ntotal: ids %v, want [1 -1 -1]", res.IDs)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ix.Search(cctx, q, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled search: got %v", err)
	}

	if _, err := Load(filepath.Join(dir, "missing.faiss")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	junk := filepath.Join(dir, "junk.faiss")
	os.WriteFile(junk, []byte("this is not a FAISS index"), 0o644)
	if _, err := Load(junk); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk file: got %v, want ErrCorrupt", err)
	}
	good := filepath.Join(dir, "good.faiss")
	if err := ix.Save(good); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.faiss")
	os.WriteFile(trunc, b[:len(b)/2], 0o644)
	if _, err := Load(trunc); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated file: got %v, want ErrCorrupt", err)
	}
	// A sidecar that disagrees with the index file.
	os.WriteFile(MetaPath(good), []byte(`{"format":"re2g-faiss/1","dim":7,"metric":"ip"}`), 0o644)
	if _, err := Load(good); !errors.Is(err, ErrCorrupt) {
		t.Errorf("mismatched sidecar: got %v, want ErrCorrupt", err)
	}
	// A sidecar whose vector count disagrees (a file cut or swapped).
	if err := ix.Save(good); err != nil {
		t.Fatal(err)
	}
	side, _ := os.ReadFile(MetaPath(good))
	var sm map[string]any
	json.Unmarshal(side, &sm)
	sm["ntotal"] = sm["ntotal"].(float64) + 1
	side, _ = json.Marshal(sm)
	os.WriteFile(MetaPath(good), side, 0o644)
	if _, err := Load(good); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "vectors") {
		t.Errorf("sidecar with another vector count: got %v, want ErrCorrupt", err)
	}
	os.Remove(MetaPath(good))
	plain, err := Load(good) // FAISS file alone: metric from FAISS
	if err != nil {
		t.Fatalf("index without sidecar: %v", err)
	}
	plain.Close()

	ix.Close()
	if _, err := ix.Search(ctx, q, 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("search after close: got %v, want ErrClosed", err)
	}
	if err := ix.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := NewHNSW(0, HNSWConfig{}); !errors.Is(err, ErrDimension) {
		t.Errorf("zero dimension: got %v", err)
	}
}

func TestConcurrentSearchesWithDifferentEf(t *testing.T) {
	xb, xq, ids := testData(t)
	ctx := context.Background()
	ix, err := NewHNSW(testDim, HNSWConfig{M: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Add(ctx, xb, ids); err != nil {
		t.Fatal(err)
	}
	efs := []int{4, 16, 64, 256}
	want := map[int]*Result{}
	for _, ef := range efs {
		if want[ef], err = ix.Search(ctx, xq, testK, &SearchOptions{EfSearch: ef}); err != nil {
			t.Fatal(err)
		}
	}
	if same(want[4], want[256]) {
		t.Fatal("efSearch 4 and 256 gave identical results; test cannot detect interference")
	}
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ef := efs[g%len(efs)]
			for i := 0; i < testQ; i++ {
				r, err := ix.Search(ctx, xq[i*testDim:(i+1)*testDim], testK, &SearchOptions{EfSearch: ef})
				if err != nil {
					errc <- err
					return
				}
				wi, _ := want[ef].Row(i)
				for j := range wi {
					if r.IDs[j] != wi[j] {
						errc <- errors.New("concurrent search with a different efSearch changed the result")
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func same(a, b *Result) bool {
	for i := range a.IDs {
		if a.IDs[i] != b.IDs[i] {
			return false
		}
	}
	return true
}

func TestThreads(t *testing.T) {
	defer SetThreads(0)
	def := Threads()
	if def < 1 {
		t.Fatalf("default threads %d", def)
	}
	SetThreads(1)
	if Threads() != 1 || threadsFor(100) != 1 {
		t.Fatalf("SetThreads(1): Threads()=%d", Threads())
	}
	SetThreads(4)
	if threadsFor(1) != 1 || threadsFor(3) != 3 || threadsFor(100) != 4 {
		t.Fatalf("threadsFor: %d %d %d", threadsFor(1), threadsFor(3), threadsFor(100))
	}
	// out of range: an error naming the bound, and the count unchanged
	for _, n := range []int{-1, limits.MaxThreads() + 1, 100000} {
		if err := SetThreads(n); err == nil || !strings.Contains(err.Error(), fmt.Sprint(limits.MaxThreads())) {
			t.Errorf("SetThreads(%d): %v, want an error naming the limit %d", n, err, limits.MaxThreads())
		}
		if Threads() != 4 {
			t.Errorf("SetThreads(%d) changed the count to %d", n, Threads())
		}
	}
}

// A per-search efSearch must give exactly what the same value set as the
// index default gives (what Python users do with hnsw.efSearch).
func TestPerSearchEfEqualsDefaultEf(t *testing.T) {
	xb, xq, ids := testData(t)
	ctx := context.Background()
	ix, err := NewHNSW(testDim, HNSWConfig{M: 16, Metric: L2})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Add(ctx, xb, ids); err != nil {
		t.Fatal(err)
	}
	for _, ef := range []int{8, 32} {
		per, err := ix.Search(ctx, xq, testK, &SearchOptions{EfSearch: ef})
		if err != nil {
			t.Fatal(err)
		}
		if err := ix.SetDefaultEfSearch(ef); err != nil {
			t.Fatal(err)
		}
		def, err := ix.Search(ctx, xq, testK, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !same(per, def) {
			t.Fatalf("efSearch=%d per search differs from efSearch=%d as default", ef, ef)
		}
		if err := ix.SetDefaultEfSearch(DefaultEfSearch); err != nil {
			t.Fatal(err)
		}
	}
	if p, _, _ := ix.HNSWParams(); p.EfSearch != DefaultEfSearch {
		t.Fatalf("default efSearch %d after per-search values, want %d", p.EfSearch, DefaultEfSearch)
	}
}

// TestCheckConfig: an index matches the configuration it was built with
// (zero fields being the defaults), survives a save and load, and any other
// configuration, or a flat index, is ErrMismatch naming the difference.
func TestCheckConfig(t *testing.T) {
	xb, _, ids := testData(t)
	ctx := context.Background()
	cfg := HNSWConfig{M: 8, SQ8: true, EfSearch: 40}
	ix, err := NewHNSW(testDim, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := ix.Train(ctx, xb); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ctx, xb[:100*testDim], ids[:100]); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sq8.faiss")
	if err := ix.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	for _, x := range []*Index{ix, back} {
		if err := x.CheckConfig(cfg); err != nil {
			t.Errorf("%s against its own configuration: %v", x.Description(), err)
		}
	}
	for _, tc := range []struct {
		cfg  HNSWConfig
		want string
	}{
		{HNSWConfig{M: 8, EfSearch: 40}, "vectors sq8, want flat"},
		{HNSWConfig{SQ8: true, EfSearch: 40}, "M 8, want 32"},
		{HNSWConfig{M: 8, SQ8: true}, "efSearch 40, want 128"},
		{HNSWConfig{M: 8, SQ8: true, EfSearch: 40, EfConstruction: 200}, "efConstruction 80, want 200"},
		{HNSWConfig{M: 8, SQ8: true, EfSearch: 40, Metric: L2}, "metric ip, want l2"},
	} {
		if err := back.CheckConfig(tc.cfg); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("against %+v: got %v, want ErrMismatch with %q", tc.cfg, err, tc.want)
		}
	}
	flat, err := NewFlat(testDim, InnerProduct)
	if err != nil {
		t.Fatal(err)
	}
	defer flat.Close()
	if err := flat.CheckConfig(HNSWConfig{}); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "not HNSW") {
		t.Errorf("flat index against an HNSW configuration: got %v", err)
	}
}
