package dense

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/re2g/re2g/internal/vecgen"
)

// TestLinkShardsAndRenumber: LinkShards adds another store's shards by
// hard links (the same inodes, nothing read or rewritten), skips a shard
// it has with the same contents, refuses one that differs and leaves the
// store as it was; a file a crashed link left behind is replaced. Renumber
// puts the shards in the order given, numbered from 0, and the store reads
// back the same.
func TestLinkShardsAndRenumber(t *testing.T) {
	ctx := context.Background()
	g := vecgen.New(vecgen.Spec{Dim: dim, Clusters: 4, Noise: 0.5, Seed: 5})
	dst, err := Create(filepath.Join(t.TempDir(), "dst"), dim, F32)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Create(filepath.Join(t.TempDir(), "src"), dim, F32)
	if err != nil {
		t.Fatal(err)
	}
	put := func(st *Store, name string, stream uint64) {
		ids, v := shardData(g, stream, 50, name)
		if _, err := st.PutShard(ctx, name, ids, v); err != nil {
			t.Fatal(err)
		}
	}
	put(dst, "c0", 0)
	put(dst, "c2", 2)
	put(src, "c3", 3)
	put(src, "c1", 1)
	put(src, "c2", 2) // the same as dst's
	put(src, "stale", 9)
	// a file a crashed link left: replaced
	if err := os.WriteFile(filepath.Join(dst.Dir(), "c1.g1.vec"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := dst.LinkShards(ctx, src, []string{"c1", "c2", "c3"})
	if err != nil || n != 2 {
		t.Fatalf("LinkShards: %d, %v; want 2 added", n, err)
	}
	var a, b syscall.Stat_t
	syscall.Stat(filepath.Join(src.Dir(), "c1.g1.vec"), &a)
	syscall.Stat(filepath.Join(dst.Dir(), "c1.g1.vec"), &b)
	if a.Ino != b.Ino {
		t.Error("c1 was copied, not linked")
	}
	names := func(st *Store) (out []string) {
		for _, si := range st.Shards() {
			out = append(out, si.Name)
		}
		return out
	}
	if got := names(dst); !reflect.DeepEqual(got, []string{"c0", "c2", "c3", "c1"}) {
		t.Fatalf("after linking: %v", got)
	}
	if _, err := dst.LinkShards(ctx, src, []string{"nope"}); err == nil || !strings.Contains(err.Error(), `no shard "nope"`) {
		t.Errorf("linking a missing shard: %v", err)
	}
	// a shard that differs from dst's is refused; dst is unchanged
	other, err := Create(filepath.Join(t.TempDir(), "other"), dim, F32)
	if err != nil {
		t.Fatal(err)
	}
	put(other, "c0", 7)
	put(other, "c4", 4)
	if _, err := dst.LinkShards(ctx, other, []string{"c0", "c4"}); err == nil || !strings.Contains(err.Error(), "shard c0 differs") {
		t.Errorf("linking a different c0: %v", err)
	}
	reopened, err := Open(dst.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(reopened); !reflect.DeepEqual(got, []string{"c0", "c2", "c3", "c1"}) {
		t.Fatalf("after a refused link the store holds %v", got)
	}

	want := map[string][]float32{}
	for _, si := range dst.Shards() {
		_, _, v, err := dst.ReadShard(ctx, si.Name)
		if err != nil {
			t.Fatal(err)
		}
		want[si.Name] = v
	}
	order := []string{"c0", "c1", "c2", "c3"}
	if err := dst.Renumber(order); err != nil {
		t.Fatal(err)
	}
	reopened, err = Open(dst.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for i, si := range reopened.Shards() {
		if si.Name != order[i] || si.No != i {
			t.Fatalf("shard %d: %s numbered %d", i, si.Name, si.No)
		}
		_, _, v, err := reopened.ReadShard(ctx, si.Name)
		if err != nil || !reflect.DeepEqual(v, want[si.Name]) {
			t.Fatalf("shard %s reads back otherwise: %v", si.Name, err)
		}
		if id, err := reopened.PassageID(FaissID(i, 3)); err != nil || id != si.Name+"-3" {
			t.Fatalf("FAISS id of row 3 of shard %d: %q %v", i, id, err)
		}
	}
	for _, bad := range [][]string{{"c0", "c1", "c2"}, {"c0", "c1", "c2", "c2"}, {"c0", "c1", "c2", "c9"}} {
		if err := reopened.Renumber(bad); err == nil {
			t.Errorf("Renumber(%v): no error", bad)
		}
	}
}
