package dense

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/re2g/re2g/internal/vecgen"
)

// Vectors and Lookup read single rows and ids back as ReadShard has them.
func TestVectorsAndLookup(t *testing.T) {
	ctx := context.Background()
	g := vecgen.New(vecgen.Spec{Dim: dim, Clusters: 4, Noise: 0.5, Seed: 9})
	for _, dt := range []DType{F32, F16} {
		t.Run(string(dt), func(t *testing.T) {
			s, err := Create(filepath.Join(t.TempDir(), "s"), dim, dt)
			if err != nil {
				t.Fatal(err)
			}
			ids0, v0 := shardData(g, 1, 50, "a")
			ids1, v1 := shardData(g, 2, 30, "b")
			for _, sh := range []struct {
				name string
				ids  []string
				v    []float32
			}{{"s0", ids0, v0}, {"s1", ids1, v1}} {
				if _, err := s.PutShard(ctx, sh.name, sh.ids, sh.v); err != nil {
					t.Fatal(err)
				}
			}
			_, _, want1, err := s.ReadShard(ctx, "s1")
			if err != nil {
				t.Fatal(err)
			}
			fids, found, err := s.Lookup([]string{"b-7", "a-0", "nope", "b-29"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(found, []bool{true, true, false, true}) || fids[0] != FaissID(1, 7) || fids[1] != FaissID(0, 0) || fids[3] != FaissID(1, 29) {
				t.Fatalf("lookup: %v %v", fids, found)
			}
			got, err := s.Vectors([]int64{fids[0], fids[3]})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[:dim], want1[7*dim:8*dim]) || !slices.Equal(got[dim:], want1[29*dim:30*dim]) {
				t.Fatal("vectors differ from the shard's rows")
			}
			if _, err := s.Vectors([]int64{FaissID(1, 30)}); !errors.Is(err, ErrUnknownID) {
				t.Fatalf("row past the shard: %v", err)
			}
			if _, err := s.Vectors([]int64{FaissID(5, 0)}); !errors.Is(err, ErrUnknownID) {
				t.Fatalf("unknown shard: %v", err)
			}
			// Replacing a shard is seen by the next Lookup.
			if _, err := s.PutShard(ctx, "s1", []string{"c-0"}, v1[:dim]); err != nil {
				t.Fatal(err)
			}
			if _, found, _ := s.Lookup([]string{"b-7", "c-0"}); found[0] || !found[1] {
				t.Fatalf("after replacing s1: %v", found)
			}
		})
	}
}
