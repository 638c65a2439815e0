package dense

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/vecgen"
)

const dim = 32

func shardData(g *vecgen.Generator, stream uint64, n int, prefix string) ([]string, []float32) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids, g.Vectors(stream, n)
}

func TestHalfRoundTrip(t *testing.T) {
	for _, f := range []float32{0, 1, -1, 0.1, -2.5e-3, 65504, 1e-7, 6.1e-5, 3.14159} {
		h := f16ToF32(f32ToF16(f))
		if rel := math.Abs(float64(h-f)) / math.Max(math.Abs(float64(f)), 6e-5); rel > 1e-3 {
			t.Errorf("f16(%g) = %g", f, h)
		}
	}
	if !math.IsInf(float64(f16ToF32(f32ToF16(1e6))), 1) {
		t.Error("1e6 should overflow to +Inf")
	}
	for h := 0; h < 0x7c00; h++ { // every finite positive half survives f32 and back
		if got := f32ToF16(f16ToF32(uint16(h))); got != uint16(h) {
			t.Fatalf("half %04x -> %g -> %04x", h, f16ToF32(uint16(h)), got)
		}
	}
}

func TestStoreShardsAndMerge(t *testing.T) {
	ctx := context.Background()
	g := vecgen.New(vecgen.Spec{Dim: dim, Clusters: 8, Noise: 0.5, NormSpread: 0.2, Seed: 3})
	for _, dt := range []DType{F32, F16} {
		t.Run(string(dt), func(t *testing.T) {
			dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			a, err := Create(dirA, dim, dt)
			if err != nil {
				t.Fatal(err)
			}
			ids0, v0 := shardData(g, 1, 500, "p0")
			ids1, v1 := shardData(g, 2, 700, "p1")
			if _, err := a.PutShard(ctx, "gpu0", ids0, v0); err != nil {
				t.Fatal(err)
			}
			b, err := Create(dirB, dim, dt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.PutShard(ctx, "gpu1", ids1, v1); err != nil {
				t.Fatal(err)
			}
			if err := Merge(ctx, a, b); err != nil {
				t.Fatal(err)
			}
			if err := Merge(ctx, a, b); err == nil {
				t.Fatal("merging the same shard twice: no error")
			}
			a, err = Open(dirA) // reopen from disk
			if err != nil {
				t.Fatal(err)
			}
			if a.Count() != 1200 || len(a.Shards()) != 2 {
				t.Fatalf("merged store: %d vectors in %d shards", a.Count(), len(a.Shards()))
			}
			_, gotIDs, gotV, err := a.ReadShard(ctx, "gpu1")
			if err != nil {
				t.Fatal(err)
			}
			tol := 0.0
			if dt == F16 {
				tol = 1e-3
			}
			for i := range v1 {
				if math.Abs(float64(gotV[i]-v1[i])) > tol*math.Max(1, math.Abs(float64(v1[i]))) {
					t.Fatalf("vector value %d: %g, want %g", i, gotV[i], v1[i])
				}
			}
			if gotIDs[5] != ids1[5] {
				t.Fatalf("id 5: %q", gotIDs[5])
			}

			// Index over the whole store: ids map back to passages.
			ix, err := a.BuildIndex(ctx, BuildOptions{HNSW: faiss.HNSWConfig{M: 16}})
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			q := v1[7*dim : 8*dim] // a stored vector: nearest by IP is likely itself or close
			res, err := ix.Search(ctx, q, 5, nil)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := a.PassageID(res.IDs[0])
			if err != nil {
				t.Fatal(err)
			}
			if no, _ := SplitID(res.IDs[0]); no != 0 && no != 1 {
				t.Fatalf("faiss id %d has shard %d", res.IDs[0], no)
			}
			t.Logf("top hit %s score %.3f", pid, res.Scores[0])

			// Replace one shard: the other shard's FAISS ids do not move.
			before := FaissID(1, 3)
			p1, _ := a.PassageID(before)
			ids0b, v0b := shardData(g, 9, 300, "p0new")
			si, err := a.PutShard(ctx, "gpu0", ids0b, v0b)
			if err != nil {
				t.Fatal(err)
			}
			if si.No != 0 || si.Gen != 2 {
				t.Fatalf("replaced shard: %+v", si)
			}
			if p, _ := a.PassageID(before); p != p1 {
				t.Fatalf("id %d was %q, now %q after replacing another shard", before, p1, p)
			}
			if p, _ := a.PassageID(FaissID(0, 1)); p != "p0new-1" {
				t.Fatalf("replaced shard row 1: %q", p)
			}
			if _, err := a.PassageID(FaissID(0, 300)); !errors.Is(err, ErrUnknownID) {
				t.Fatalf("row past the replaced shard: %v", err)
			}
			ents, _ := os.ReadDir(dirA)
			if len(ents) != 5 { // manifest + 2×(vec, ids): old generation removed, no temporaries
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("store files: %v", names)
			}
		})
	}
}

func TestShardedSearchEqualsSingleIndex(t *testing.T) {
	ctx := context.Background()
	g := vecgen.New(vecgen.Spec{Dim: dim, Clusters: 8, Noise: 0.5, NormSpread: 0.3, Seed: 5})
	s, err := Create(t.TempDir(), dim, F32)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		ids, v := shardData(g, uint64(10+i), 400, fmt.Sprint("s", i))
		if _, err := s.PutShard(ctx, fmt.Sprint("shard", i), ids, v); err != nil {
			t.Fatal(err)
		}
	}
	// Exact search makes the comparison deterministic: flat over all vs
	// per-shard flat merged.
	q := g.Vectors(99, 20)
	all, err := faiss.NewFlat(dim, faiss.InnerProduct)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	var parts []*faiss.Index
	for _, si := range s.Shards() {
		_, _, v, err := s.ReadShard(ctx, si.Name)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, si.Count)
		for r := range ids {
			ids[r] = FaissID(si.No, r)
		}
		all.Add(ctx, v, ids)
		p, _ := faiss.NewFlat(dim, faiss.InnerProduct)
		defer p.Close()
		p.Add(ctx, v, ids)
		parts = append(parts, p)
	}
	sh, err := NewSharded(parts...)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := all.Search(ctx, q, 10, nil)
	got, err := sh.Search(ctx, q, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.IDs {
		if want.IDs[i] != got.IDs[i] {
			t.Fatalf("hit %d: sharded %d, single %d", i, got.IDs[i], want.IDs[i])
		}
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "none")); err == nil {
		t.Error("open of a missing store: no error")
	}
	s, err := Create(dir, 4, F32)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, 5, F32); err == nil {
		t.Error("create over a store of another dim: no error")
	}
	if _, err := s.PutShard(ctx, "x", []string{"a"}, []float32{1, 2, 3}); err == nil {
		t.Error("wrong vector length: no error")
	}
	if _, err := s.PutShard(ctx, "../evil", []string{"a"}, []float32{1, 2, 3, 4}); err == nil {
		t.Error("bad shard name: no error")
	}
	if _, err := s.PutShard(ctx, "x", []string{"a\nb"}, []float32{1, 2, 3, 4}); err == nil {
		t.Error("id with a newline: no error")
	}
	si, err := s.PutShard(ctx, "x", []string{"a", "b"}, []float32{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte: the CRC catches it.
	path := filepath.Join(dir, si.vecFile())
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 0xff
	os.WriteFile(path, b, 0o644)
	if _, _, _, err := s.ReadShard(ctx, "x"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt shard: got %v, want ErrCorrupt", err)
	}
	os.WriteFile(filepath.Join(dir, manifestName), []byte("{"), 0o644)
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt manifest: got %v, want ErrCorrupt", err)
	}
	if _, err := s.PassageID(FaissID(7, 0)); !errors.Is(err, ErrUnknownID) {
		t.Errorf("unknown shard: got %v", err)
	}
}
