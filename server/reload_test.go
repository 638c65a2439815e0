package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/re2g/re2g/data"
	"github.com/re2g/re2g/indexdir"
	"github.com/re2g/re2g/internal/dirtest"
	"github.com/re2g/re2g/neural"
	"github.com/re2g/re2g/pipeline"
	"github.com/re2g/re2g/server/loadgen"
)

// TestReloadUnderLoad serves a real index (BM25 and HNSW, tiny DPR) to
// clients that query it without pause while the index is updated (passages
// added, deleted, compacted) and reloaded after each update: every request
// is answered (0 errors), /readyz and the metrics show each new generation,
// and a passage added is found as soon as its generation is loaded. A
// reload of a damaged generation fails, is counted, and leaves the server
// answering from the generation it had; once repaired, it loads.
func TestReloadUnderLoad(t *testing.T) {
	testPipeline(t)
	ctx := context.Background()
	dir := dirtest.Copy(t, filepath.Join(fixDir, "index"))
	p, err := pipeline.New(pipeline.Config{Index: dir, QueryEncoder: fixDirs.QueryEncoder, DenseK: 5, SparseK: 5,
		Models: neural.Options{MaxLength: 64, BatchSize: 64}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, url := startServer(t, Config{}, p)
	enc, err := neural.LoadEncoder(fixDirs.CtxEncoder, neural.Options{MaxLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	uo := indexdir.UpdateOptions{Encoder: enc, EncoderDir: fixDirs.CtxEncoder, Progress: io.Discard}

	var bodies [][]byte
	for _, q := range fixQs[:50] {
		b, _ := json.Marshal(map[string]string{"query": q})
		bodies = append(bodies, b)
	}
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	rep := make(chan *loadgen.Report, 1)
	go func() {
		r, err := loadgen.Run(lctx, loadgen.Config{URL: url, Path: "/v1/retrieve", Bodies: bodies, Clients: 4, Duration: 10 * time.Minute})
		if err != nil {
			t.Error(err)
		}
		rep <- r
	}()
	ready := func() ReadyResponse {
		t.Helper()
		resp, b := do(t, mustReq(t, "GET", url+"/readyz", ""))
		var r ReadyResponse
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("/readyz: %d %s", resp.StatusCode, b)
		}
		return r
	}
	// retrieves wants a /v1/retrieve of text to give id first.
	retrieves := func(text, id string) {
		t.Helper()
		resp, b := post(t, url+"/v1/retrieve", fmt.Sprintf(`{"query": %q}`, text))
		var got struct {
			Candidates []struct {
				ID       string `json:"id"`
				FromBM25 bool   `json:"from_bm25"`
			} `json:"candidates"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &got) != nil {
			t.Fatalf("/v1/retrieve: %d %s", resp.StatusCode, b)
		}
		for _, c := range got.Candidates {
			if c.FromBM25 {
				if c.ID != id {
					t.Fatalf("BM25's best for %.40q is %s, want %s", text, c.ID, id)
				}
				return
			}
		}
		t.Fatalf("no BM25 candidate for %.40q", text)
	}
	reload := func(gen, passages int) {
		t.Helper()
		time.Sleep(200 * time.Millisecond) // queries on the old generation
		if err := s.ReloadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if r := ready(); r.Generation != gen || r.Passages != passages {
			t.Fatalf("/readyz after reloading: generation %d, %d passages; want %d, %d", r.Generation, r.Passages, gen, passages)
		}
	}
	add := func(ps []data.Passage) {
		t.Helper()
		corpus := filepath.Join(t.TempDir(), "add.jsonl")
		f, _ := os.Create(corpus)
		data.WriteCorpus(f, ps)
		f.Close()
		if _, err := indexdir.Add(ctx, dir, corpus, uo); err != nil {
			t.Fatal(err)
		}
	}
	if r := ready(); r.Generation != 0 || r.Passages != 40 {
		t.Fatalf("/readyz: %+v", r)
	}
	if err := s.ReloadIndex(ctx); err != nil { // nothing changed
		t.Fatal(err)
	}
	add(fixPs[40:50])
	reload(1, 50)
	retrieves(fixPs[45].Text, fixPs[45].ID)
	if _, err := indexdir.Delete(ctx, dir, []string{fixPs[45].ID, fixPs[3].ID}, uo); err != nil {
		t.Fatal(err)
	}
	reload(2, 48)
	add(fixPs[50:60])
	reload(3, 58)
	retrieves(fixPs[55].Text, fixPs[55].ID)
	if _, err := indexdir.Compact(ctx, dir, uo); err != nil {
		t.Fatal(err)
	}
	reload(4, 58)
	retrieves(fixPs[55].Text, fixPs[55].ID)

	// a damaged generation: the reload fails, the server keeps generation 4
	add(fixPs[60:70])
	m, err := indexdir.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	hnsw := filepath.Join(dir, m.Segments[len(m.Segments)-1].Dir, "dense", "hnsw.faiss")
	good, err := os.ReadFile(hnsw)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(hnsw, good[:len(good)/2], 0o644)
	time.Sleep(200 * time.Millisecond)
	if err := s.ReloadIndex(ctx); err == nil {
		t.Fatal("a damaged index reloaded")
	}
	if r := ready(); r.Generation != 4 || r.Passages != 58 {
		t.Fatalf("/readyz after a failed reload: %+v", r)
	}
	retrieves(fixPs[55].Text, fixPs[55].ID)
	os.WriteFile(hnsw, good, 0o644)
	reload(5, 68)
	retrieves(fixPs[65].Text, fixPs[65].ID)

	time.Sleep(300 * time.Millisecond)
	stop()
	r := <-rep
	if r == nil || r.Errors != 0 || r.OK < 20 {
		t.Fatalf("load across the reloads: %+v", r)
	}
	t.Logf("load across 6 reloads (one failed): %d requests answered, 0 errors, p50 %v, p99 %v", r.OK, r.P50, r.P99)
	f := scrape(t, url)
	for res, want := range map[string]float64{"ok": 5, "unchanged": 1, "error": 1} {
		if got, _ := f.value("re2g_index_reloads_total", "result", res); got != want {
			t.Errorf("re2g_index_reloads_total{result=%q} = %v, want %v", res, got, want)
		}
	}
	if g, _ := f.value("re2g_index_generation"); g != 5 {
		t.Errorf("re2g_index_generation = %v", g)
	}
	if n, _ := f.value("re2g_index_passages"); n != 68 {
		t.Errorf("re2g_index_passages = %v", n)
	}
}
