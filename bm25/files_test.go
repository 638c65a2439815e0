package bm25

import (
	"context"
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
		dir := filepath.Join(t.TempDir(), "ix")
		copyTree(t, src, dir)
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
	dir := filepath.Join(t.TempDir(), "ix")
	copyTree(t, src, dir)
	ix, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
