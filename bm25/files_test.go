package bm25

import (
	"context"
	"github.com/re2g/re2g/internal/dirtest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/re2g/re2g/data"
)

// TestOpenIncompleteIndex: an index with files deleted is reported as
// incomplete, naming what is missing (it used to be "error parsing mapping
// JSON"), and nothing is created in their place.
func TestOpenIncompleteIndex(t *testing.T) {
	src := filepath.Join(t.TempDir(), "ix")
	ix, err := Create(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(context.Background(), []data.Passage{{ID: "d1", Title: "A", Text: "apple pie"}, {ID: "d2", Text: "banana"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	zaps, _ := filepath.Glob(filepath.Join(src, "store", "*.zap"))
	if len(zaps) == 0 {
		t.Fatal("no segment files to delete")
	}
	for what, c := range map[string]struct {
		remove []string
		want   []string
	}{
		"root.bolt":       {[]string{"store/root.bolt"}, []string{"incomplete", "store/root.bolt is missing"}},
		"index_meta.json": {[]string{"index_meta.json"}, []string{"incomplete", "index_meta.json is missing"}},
		"store":           {[]string{"store"}, []string{"incomplete", "store is missing"}},
		"segments":        {[]string{"store/*.zap"}, []string{"incomplete", "segment files", "*.zap"}},
	} {
		dir := dirtest.Copy(t, src)
		for _, r := range c.remove {
			ms, _ := filepath.Glob(filepath.Join(dir, r))
			for _, m := range ms {
				if err := os.RemoveAll(m); err != nil {
					t.Fatal(err)
				}
			}
		}
		ix, err := Open(dir)
		if err == nil {
			ix.Close()
			t.Errorf("%s deleted: opened", what)
			continue
		}
		for _, w := range append(c.want, dir) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s deleted: error %q does not mention %q", what, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s deleted: a multi-line error %q", what, err)
		}
		if what == "root.bolt" {
			if _, err := os.Stat(filepath.Join(dir, "store", "root.bolt")); err == nil {
				t.Errorf("opening created a new root.bolt")
			}
		}
	}
	// the intact copy still opens
	dir := dirtest.Copy(t, src)
	ix, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
}
