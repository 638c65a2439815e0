package indexdir

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/re2g/re2g/dense"
)

// randomVectors are n random d-dimensional vectors.
func randomVectors(n, d int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, d)
		for j := range out[i] {
			out[i][j] = float32(rng.NormFloat64())
		}
	}
	return out
}

// writeNPY writes vecs as a float32 .npy file and ids as its ids file.
func writeNPY(t *testing.T, dir string, ids []string, vecs [][]float32) (string, string) {
	t.Helper()
	b := dense.NPYHeader(len(vecs), len(vecs[0]))
	for _, v := range vecs {
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	path, idsPath := filepath.Join(dir, "vectors.npy"), filepath.Join(dir, "vectors.ids")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idsPath, []byte(strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, idsPath
}

// writeVectorLines writes vecs as re2g encode's JSON lines.
func writeVectorLines(t *testing.T, path string, ids []string, vecs [][]float32) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for i, v := range vecs {
		enc.Encode(map[string]any{"id": ids[i], "vector": v})
	}
	f.Close()
	return path
}

func passageIDs(t *testing.T, n int) []string {
	var ids []string
	for _, p := range squadPassages(t, n) {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestBuildFromPrecomputedVectors(t *testing.T) {
	const n, d = 50, 16
	corpus := kiltCorpus(t, n)
	ids := passageIDs(t, n)
	vecs := randomVectors(n, d, 1)
	want := map[string][]float32{}
	for i, id := range ids {
		want[id] = vecs[i]
	}
	dir := t.TempDir()
	npy, npyIDs := writeNPY(t, dir, ids, vecs)
	lines := writeVectorLines(t, filepath.Join(dir, "vectors.jsonl"), ids, vecs)
	for _, c := range []struct{ name, vectors, ids string }{{"npy", npy, npyIDs}, {"jsonl", lines, ""}} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "index")
			m := build(t, corpus, Options{Out: out, Vectors: c.vectors, VectorIDs: c.ids, Chunk: 8, Progress: io.Discard})
			if m.Dense == nil || m.Dense.Dim != d || m.Dense.Vectors != n || m.Dense.Encoder != "" || m.Dense.Extra["vectors"] != c.vectors {
				t.Fatalf("manifest dense part %+v", m.Dense)
			}
			if got := vectors(t, out); !reflect.DeepEqual(got, want) {
				t.Fatal("the vector store does not hold the file's vectors")
			}
			checkDense(t, open(t, out), want)
		})
	}

	// An interrupted import resumes; another vectors file does not.
	out := filepath.Join(t.TempDir(), "index")
	boom := errors.New("killed")
	_, err := Build(context.Background(), corpus, Options{Out: out, Vectors: npy, VectorIDs: npyIDs, Chunk: 8, Progress: io.Discard,
		afterChunk: func(done int) error {
			if done == 2 {
				return boom
			}
			return nil
		}})
	if !errors.Is(err, boom) {
		t.Fatalf("want the simulated crash, got %v", err)
	}
	if _, err := Build(context.Background(), corpus, Options{Out: out, Vectors: lines, Chunk: 8, Resume: true, Progress: io.Discard}); err == nil ||
		!strings.Contains(err.Error(), "was started with vectors") {
		t.Fatalf("resuming with another vectors file: %v", err)
	}
	imported := 0
	build(t, corpus, Options{Out: out, Vectors: npy, VectorIDs: npyIDs, Chunk: 8, Resume: true, Progress: io.Discard,
		afterChunk: func(done int) error { imported = done; return nil }})
	if imported != 5 {
		t.Fatalf("the resumed build imported %d chunks, want the 5 missing", imported)
	}
	if got := vectors(t, out); !reflect.DeepEqual(got, want) {
		t.Fatal("the resumed vector store does not hold the file's vectors")
	}
}

func TestPrecomputedVectorsErrors(t *testing.T) {
	const n, d = 20, 8
	corpus := kiltCorpus(t, n)
	ids := passageIDs(t, n)
	vecs := randomVectors(n, d, 2)
	swapped := append([]string(nil), ids...)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	nan := randomVectors(n, d, 2)
	nan[7][5] = float32(math.NaN())
	long := append(randomVectors(n, d, 2), make([]float32, d))
	short := append([][]float32(nil), vecs[1:]...)
	ragged := randomVectors(n, d, 2)
	ragged[9] = ragged[9][:d-1]
	for _, c := range []struct {
		name  string
		write func(dir string) (string, string)
		want  string
	}{
		{"npy rows", func(dir string) (string, string) { return writeNPY(t, dir, ids[1:], short) }, "19 rows for the corpus's 20 passages"},
		{"npy order", func(dir string) (string, string) { return writeNPY(t, dir, swapped, vecs) }, "row 3 is passage"},
		{"npy ids short", func(dir string) (string, string) {
			p, i := writeNPY(t, dir, ids, vecs)
			os.WriteFile(i, []byte(strings.Join(ids[:n-1], "\n")+"\n"), 0o644)
			return p, i
		}, "has 19 lines for 20 rows"},
		{"npy NaN", func(dir string) (string, string) { return writeNPY(t, dir, ids, nan) }, "row 7 (passage " + ids[7] + "): NaN at dimension 5"},
		{"npy without ids", func(dir string) (string, string) { p, _ := writeNPY(t, dir, ids, vecs); return p, "" }, "needs its ids file"},
		{"jsonl more", func(dir string) (string, string) {
			return writeVectorLines(t, filepath.Join(dir, "v.jsonl"), append(ids, "extra"), long), ""
		}, "more rows than the corpus's 20 passages"},
		{"jsonl fewer", func(dir string) (string, string) {
			return writeVectorLines(t, filepath.Join(dir, "v.jsonl"), ids[1:], short), ""
		}, "row 0 is passage"},
		{"jsonl dimension", func(dir string) (string, string) {
			return writeVectorLines(t, filepath.Join(dir, "v.jsonl"), ids, ragged), ""
		}, "line 10: dimension 7, the first line's 8"},
		{"jsonl with ids", func(dir string) (string, string) {
			return writeVectorLines(t, filepath.Join(dir, "v.jsonl"), ids, vecs), filepath.Join(dir, "ids")
		}, "an ids file"},
		{"not npy", func(dir string) (string, string) {
			p := filepath.Join(dir, "v.npy")
			os.WriteFile(p, []byte("hello"), 0o644)
			return p, filepath.Join(dir, "ids")
		}, "not a NumPy .npy file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			v, vi := c.write(dir)
			_, err := Build(context.Background(), corpus, Options{Out: filepath.Join(dir, "index"), Vectors: v, VectorIDs: vi, Chunk: 8, Progress: io.Discard})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestAddPrecomputedVectors: passages added to an index built from
// precomputed vectors come with theirs (npy or JSON lines), and are found
// as the build's are; an add without vectors, with the wrong dimension or
// with an encoder as well is refused.
func TestAddPrecomputedVectors(t *testing.T) {
	const n, added, d = 40, 10, 16
	all := squadPassages(t, n+added)
	corpus := kiltCorpus(t, n)
	more := filepath.Join(t.TempDir(), "more.jsonl")
	var b strings.Builder
	enc := json.NewEncoder(&b)
	ids := make([]string, len(all))
	for i, x := range all {
		ids[i] = x.ID
		if i >= n {
			enc.Encode(map[string]string{"id": x.ID, "wikipedia_id": "page-" + x.Title, "title": x.Title, "text": x.Text})
		}
	}
	if err := os.WriteFile(more, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	vecs := randomVectors(n+added, d, 5)
	want := map[string][]float32{}
	for i, id := range ids {
		want[id] = vecs[i]
	}
	dir := t.TempDir()
	npy, npyIDs := writeNPY(t, dir, ids[:n], vecs[:n])
	addNPY, addIDs := writeNPY(t, t.TempDir(), ids[n:], vecs[n:])
	addLines := writeVectorLines(t, filepath.Join(dir, "more.vectors.jsonl"), ids[n:], vecs[n:])
	wrong := writeVectorLines(t, filepath.Join(dir, "wrong.jsonl"), ids[n:], randomVectors(added, d+1, 6))
	ctx := context.Background()
	for _, c := range []struct{ name, vectors, ids string }{{"npy", addNPY, addIDs}, {"jsonl", addLines, ""}} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "index")
			build(t, corpus, Options{Out: out, Vectors: npy, VectorIDs: npyIDs, Chunk: 8, Progress: io.Discard})
			for _, bad := range []struct {
				o    UpdateOptions
				want string
			}{
				{UpdateOptions{}, "holds passage vectors made elsewhere"},
				{UpdateOptions{Vectors: wrong}, "dimension 17"},
				{UpdateOptions{VectorIDs: addIDs}, "an ids file for vectors without a vectors file"},
			} {
				bad.o.Progress = io.Discard
				if _, err := Add(ctx, out, more, bad.o); err == nil || !strings.Contains(err.Error(), bad.want) {
					t.Fatalf("add %+v: %v, want an error with %q", bad.o, err, bad.want)
				}
			}
			m, err := Add(ctx, out, more, UpdateOptions{Vectors: c.vectors, VectorIDs: c.ids, Progress: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			if m.Passages != n+added || m.Dense.Vectors != n+added || len(m.Segments) != 2 {
				t.Fatalf("after the add: %d passages, %d vectors, %d segments", m.Passages, m.Dense.Vectors, len(m.Segments))
			}
			ix := open(t, out)
			checkDense(t, ix, want)
			// the search over both segments finds the exact inner-product
			// top passage for the added passages' vectors as queries
			for i := n; i < n+added; i++ {
				best, bestScore := "", math.Inf(-1)
				for j, v := range vecs {
					s := 0.0
					for k := range v {
						s += float64(v[k]) * float64(vecs[i][k])
					}
					if s > bestScore {
						best, bestScore = ids[j], s
					}
				}
				hs, err := ix.DenseSearch(ctx, [][]float32{vecs[i]}, 1, 64)
				if err != nil {
					t.Fatal(err)
				}
				if len(hs[0]) != 1 || hs[0][0].ID != best {
					t.Fatalf("dense search for added passage %s's vector: %v, want %s (inner product %.4f)", ids[i], hitIDs(hs[0]), best, bestScore)
				}
			}
		})
	}
}
