// Command faiss_bytes measures the bytes per vector of re2g's HNSW indexes
// (IndexIDMap over IndexHNSWFlat or IndexHNSWSQ QT_8bit, as faiss.NewHNSW
// makes them): it builds each on n synthetic vectors, saves it, and prints
// the file's size over n beside the model
//
//	b·d  +  4·2M  +  4·M/(M−1)  +  4 + 8 + 8
//	codes   level-0 links  upper-level links  level, offset, id
//
// (b = 4 for float32, 1 for SQ8, whose file also holds the quantiser's
// 2·d float32 ranges once; FAISS draws a node's top level with
// P(level ≥ l) = M^−l, so a node has M/(M−1) upper-level links on average),
// and what a corpus of -corpus vectors needs at that rate. The index in
// memory holds the same arrays as the file.
//
//	go run ./scripts/faiss_bytes -n 1000,10000,50000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/re2g/re2g/faiss"
	"github.com/re2g/re2g/internal/vecgen"
)

func main() {
	ns := flag.String("n", "1000,10000,50000", "corpus sizes")
	d := flag.Int("d", 768, "dimension")
	m := flag.Int("M", faiss.DefaultM, "HNSW M")
	efc := flag.Int("efc", faiss.DefaultEfConstruction, "HNSW efConstruction")
	corpus := flag.Float64("corpus", 21e6, "corpus size to project to")
	out := flag.String("out", "", "folder for the index files (default: a temporary one, removed)")
	flag.Parse()
	if err := run(*ns, *d, *m, *efc, *corpus, *out); err != nil {
		fmt.Fprintln(os.Stderr, "faiss_bytes:", err)
		os.Exit(1)
	}
}

func run(nlist string, d, m, efc int, corpus float64, out string) error {
	var ns []int
	for _, f := range strings.Split(nlist, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-n %q: want positive integers", nlist)
		}
		ns = append(ns, n)
	}
	if out == "" {
		tmp, err := os.MkdirTemp("", "faiss_bytes-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out = tmp
	}
	ctx := context.Background()
	g := vecgen.New(vecgen.Default(d))
	fmt.Printf("d=%d M=%d efConstruction=%d; model: b·d + 8M + 4M/(M-1) + 20 bytes\n\n", d, m, efc)
	fmt.Printf("| n | index | file bytes | bytes/vector | model | %.3g vectors need |\n|---:|---|---:|---:|---:|---:|\n", corpus)
	for _, n := range ns {
		xb := g.Vectors(1, n)
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = int64(i)
		}
		for _, sq8 := range []bool{false, true} {
			ix, err := faiss.NewHNSW(d, faiss.HNSWConfig{M: m, EfConstruction: efc, SQ8: sq8})
			if err != nil {
				return err
			}
			if sq8 {
				if err := ix.Train(ctx, xb); err != nil {
					ix.Close()
					return err
				}
			}
			if err := ix.Add(ctx, xb, ids); err != nil {
				ix.Close()
				return err
			}
			path := filepath.Join(out, fmt.Sprintf("n%d-sq8-%v.faiss", n, sq8))
			err = ix.Save(path)
			desc := ix.Description()
			ix.Close()
			if err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			b := 4.0
			if sq8 {
				b = 1
			}
			model := b*float64(d) + 8*float64(m) + 4*float64(m)/float64(m-1) + 20
			per := float64(st.Size()) / float64(n)
			fmt.Printf("| %d | %s | %d | %.1f | %.1f | %.1f GB (%.1f GiB) |\n", n, desc, st.Size(), per, model, per*corpus/1e9, per*corpus/(1<<30))
		}
	}
	return nil
}
